// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// Test-only: forwards any call, so a submitBatch can land through a contract (no top-level
/// calldata for readers to parse). Readers must keep working from the events alone.
contract Relayer {
    function relay(address target, bytes calldata data) external returns (bytes memory) {
        (bool ok, bytes memory ret) = target.call(data);
        if (!ok) {
            assembly {
                revert(add(ret, 32), mload(ret))
            }
        }
        return ret;
    }
}
