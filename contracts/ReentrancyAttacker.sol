// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// TEST ONLY: a payee that tries to re-enter withdraw() from its receive hook.
/// It records how many re-entries succeeded, without reverting itself, so a test can check that the
/// market paid exactly the credit once and that every re-entry was refused.
contract ReentrancyAttacker {
    address public immutable market;
    uint256 public reentryAttempts;
    uint256 public reentrySuccesses;
    uint256 public received;
    uint256 public maxDepth;

    constructor(address market_, uint256 maxDepth_) {
        market = market_;
        maxDepth = maxDepth_;
    }

    /// Forward any call (register(), withdraw(), ...) to the market as this contract.
    function act(bytes calldata data) external returns (bytes memory) {
        (bool ok, bytes memory ret) = market.call(data);
        if (!ok) {
            assembly {
                revert(add(ret, 32), mload(ret))
            }
        }
        return ret;
    }

    receive() external payable {
        received += msg.value;
        if (reentryAttempts < maxDepth) {
            reentryAttempts += 1;
            (bool ok,) = market.call(abi.encodeWithSignature("withdraw()"));
            if (ok) reentrySuccesses += 1;
        }
    }
}
