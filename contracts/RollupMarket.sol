// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// The snarkjs-exported Groth16 verifier for the batch circuit (public signals = [rho, F]).
interface IGroth16Verifier {
    function verifyProof(
        uint256[2] calldata a,
        uint256[2][2] calldata b,
        uint256[2] calldata c,
        uint256[2] calldata pubSignals
    ) external view returns (bool);
}

/// @title RollupMarket: one Groth16 proof per batch of data-owner updates.
/// @notice The model owner (MO) deploys with the reward deposit and the task parameters. Off-chain
/// servers aggregate a batch of valid DO updates and prove it; anyone (a coordinator or any relayer)
/// submits the proof with the packed aggregate and the payee list. The contract derives the proof's
/// public inputs itself from the calldata and its own state (docs/DESIGN.md "Binding"):
///     rho = keccak256(abi.encodePacked(chainid, address(this), taskId, batchIndex,
///                                      payees.length, payees, words)) mod r
///     F   = sum_m words[m] * rho^(m+1) mod r
/// so a proof is bound to this chain, this contract, this task, the next batch index, these payees
/// and this aggregate: replaying it anywhere else changes rho and fails verification.
/// @dev Who may call submitBatch: anyone. The proof binds everything that matters (payees and
/// aggregate), so a relayer cannot redirect payments or alter the aggregate; a front-runner who
/// copies a pending submission only lands the same batch (the original then fails harmlessly,
/// because the batch index moved on). Restricting callers would add a liveness dependency on one
/// operator and let it censor DOs, for no safety gain.
/// Payments are pulled (withdraw), with checks-effects-interactions and a reentrancy lock.
/// Conservation: deposit == totalCredited + refund (refund paid once, by finish()).
contract RollupMarket {
    uint256 internal constant R_FIELD =
        21888242871839275222246405745257275088548364400416034343698204186575808495617;

    struct Task {
        uint256 batchSize; // N: DOs per batch (max payees per batch)
        uint256 dims; // d
        uint256 bits; // k
        uint256 normBound; // B
        uint256 reward; // wei per accepted DO
        uint256 batches; // R
        uint256 deadline; // unix time; no batch after it
        uint256 nWords; // M
        uint256 wordBits; // w
        uint256 perWord; // c
    }

    // ---- immutable task description ----
    IGroth16Verifier public immutable verifier;
    address public immutable modelOwner;
    bytes32 public immutable taskId;
    uint256 public immutable batchSize;
    uint256 public immutable dims;
    uint256 public immutable bits;
    uint256 public immutable normBound;
    uint256 public immutable reward;
    uint256 public immutable batches;
    uint256 public immutable deadline;
    uint256 public immutable nWords;
    uint256 public immutable wordBits;
    uint256 public immutable perWord;
    uint256 public immutable wordLimit; // 2^(w*c): every packed word must be below it
    bytes32 public immutable modelHash;
    uint256 public immutable deposit;
    bool public immutable whitelistOnly;
    string public modelURI;

    // ---- state (packed so a batch touches one slot per payee and one for the totals) ----
    struct Member {
        bool registered;
        uint64 paidTag; // batchIndex + 1 of the batch that paid this DO; 0 = not paid yet
        uint128 credit; // wei not yet withdrawn
    }

    mapping(address => bool) public whitelisted;
    mapping(address => Member) internal members;
    mapping(uint256 => bytes32) public aggregateCommitments; // keccak256(abi.encodePacked(words))
    uint128 public totalCredited;
    uint64 internal batchCount;
    bool public finished;
    uint8 private locked = 1;
    uint256 public totalWithdrawn;
    uint256 public refunded;
    uint256 public registeredCount;

    // ---- events (one per state change) ----
    event TaskCreated(bytes32 indexed taskId, address indexed modelOwner, address verifier, uint256 deposit,
        bytes32 modelHash, string modelURI);
    event Whitelisted(address indexed dataOwner);
    event Registered(address indexed dataOwner);
    /// The packed words are not repeated in the log (8 gas per byte): the MO reads them from this
    /// transaction's calldata and checks them against aggregateCommitment = keccak256(words).
    event BatchSubmitted(uint256 indexed batchIndex, bytes32 aggregateCommitment, address[] payees,
        address submitter);
    event Withdrawn(address indexed payee, uint256 amount);
    event Finished(uint256 refund, uint256 totalCredited);

    // ---- errors ----
    error BadParams(string why);
    error DepositTooSmall(uint256 sent, uint256 required);
    error NotWhitelisted(address who);
    error AlreadyRegistered(address who);
    error TaskFinished();
    error DeadlinePassed(uint256 nowTs, uint256 deadline);
    error AllBatchesDone(uint256 batches);
    error WrongWordCount(uint256 got, uint256 expected);
    error WordTooLarge(uint256 index);
    error BadPayeeCount(uint256 got, uint256 max);
    error UnregisteredPayee(address who);
    error DuplicatePayee(address who);
    error AlreadyPaid(address who, uint256 batchIndex);
    error InvalidProof();
    error NothingToWithdraw();
    error TransferFailed();
    error Reentrancy();
    error NotModelOwner();
    error NotFinishable(uint256 batchesDone, uint256 deadline);

    modifier nonReentrant() {
        if (locked != 1) revert Reentrancy();
        locked = 2;
        _;
        locked = 1;
    }

    constructor(
        address verifier_,
        Task memory t,
        bytes32 modelHash_,
        string memory modelURI_,
        address[] memory whitelist_
    ) payable {
        if (verifier_.code.length == 0) revert BadParams("verifier has no code");
        if (t.batchSize == 0 || t.dims == 0 || t.batches == 0) revert BadParams("N, d and R must be positive");
        if (t.bits < 2 || t.bits > 64) revert BadParams("k out of range");
        // circuits/params.py MAX_BATCH, MAX_DIMS: the same range on both sides
        if (t.batchSize > 512 || t.dims > 524288) revert BadParams("N or d too large");
        if (t.normBound >= R_FIELD) revert BadParams("B must be below r");
        if (t.wordBits == 0 || t.perWord == 0 || t.wordBits * t.perWord > 253) {
            revert BadParams("w*c must be in [1, 253]");
        }
        if (t.nWords == 0 || t.nWords * t.perWord < t.dims || (t.nWords - 1) * t.perWord >= t.dims) {
            revert BadParams("M must be ceil(d/c)");
        }
        if (t.deadline <= block.timestamp) revert BadParams("deadline in the past");
        if (t.batches >= type(uint64).max || t.reward >= type(uint128).max / (t.batchSize * t.batches)) {
            revert BadParams("R or reward too large");
        }
        uint256 required = t.batchSize * t.batches * t.reward;
        if (msg.value < required) revert DepositTooSmall(msg.value, required);

        verifier = IGroth16Verifier(verifier_);
        modelOwner = msg.sender;
        batchSize = t.batchSize;
        dims = t.dims;
        bits = t.bits;
        normBound = t.normBound;
        reward = t.reward;
        batches = t.batches;
        deadline = t.deadline;
        nWords = t.nWords;
        wordBits = t.wordBits;
        perWord = t.perWord;
        wordLimit = 1 << (t.wordBits * t.perWord);
        modelHash = modelHash_;
        modelURI = modelURI_;
        deposit = msg.value;
        whitelistOnly = whitelist_.length > 0;
        bytes32 id = keccak256(abi.encode(t, verifier_, msg.sender, modelHash_, keccak256(bytes(modelURI_))));
        taskId = id;
        for (uint256 i = 0; i < whitelist_.length; i++) {
            whitelisted[whitelist_[i]] = true;
            emit Whitelisted(whitelist_[i]);
        }
        emit TaskCreated(id, msg.sender, verifier_, msg.value, modelHash_, modelURI_);
    }

    /// One registration per address per task; with a whitelist only listed DOs may register.
    function register() external {
        if (finished) revert TaskFinished();
        if (block.timestamp > deadline) revert DeadlinePassed(block.timestamp, deadline);
        if (whitelistOnly && !whitelisted[msg.sender]) revert NotWhitelisted(msg.sender);
        Member storage mem = members[msg.sender];
        if (mem.registered) revert AlreadyRegistered(msg.sender);
        mem.registered = true;
        registeredCount += 1;
        emit Registered(msg.sender);
    }

    function batchesSubmitted() external view returns (uint256) {
        return batchCount;
    }

    function registered(address who) external view returns (bool) {
        return members[who].registered;
    }

    /// Index of the batch that paid `who`, or type(uint256).max if not paid.
    function paidInBatch(address who) external view returns (uint256) {
        uint256 tag = members[who].paidTag;
        return tag == 0 ? type(uint256).max : tag - 1;
    }

    function credit(address who) external view returns (uint256) {
        return members[who].credit;
    }

    /// The public inputs a proof for the next batch must have, for these words and payees.
    function publicInputs(uint256[] calldata words, address[] calldata payees)
        external
        view
        returns (uint256 rho, uint256 f)
    {
        return _publicInputs(batchCount, words, payees);
    }

    function _publicInputs(uint256 batchIndex, uint256[] calldata words, address[] calldata payees)
        internal
        view
        returns (uint256 rho, uint256 f)
    {
        rho = uint256(
            keccak256(abi.encodePacked(block.chainid, address(this), taskId, batchIndex, payees.length, payees, words))
        ) % R_FIELD;
        // Horner, with the packing bound checked on the way (one pass over the words).
        uint256 limit = wordLimit;
        uint256 acc = 0;
        for (uint256 m = words.length; m > 0;) {
            unchecked {
                --m;
            }
            uint256 w = words[m];
            if (w >= limit) revert WordTooLarge(m);
            acc = addmod(mulmod(acc, rho, R_FIELD), w, R_FIELD);
        }
        f = mulmod(acc, rho, R_FIELD);
    }

    /// Verify one batch proof, record its aggregate and credit its payees.
    /// @param words the packed aggregate (M words, each < 2^(w*c))
    /// @param payees the DOs whose valid updates are in the aggregate (1..N, registered, unpaid)
    function submitBatch(
        uint256[2] calldata a,
        uint256[2][2] calldata b,
        uint256[2] calldata c,
        uint256[] calldata words,
        address[] calldata payees
    ) external {
        // No reentrancy lock: the only external call is a STATICCALL to the verifier.
        if (finished) revert TaskFinished();
        if (block.timestamp > deadline) revert DeadlinePassed(block.timestamp, deadline);
        uint256 batchIndex = batchCount;
        if (batchIndex >= batches) revert AllBatchesDone(batches);
        if (words.length != nWords) revert WrongWordCount(words.length, nWords);
        uint256 n = payees.length;
        if (n == 0 || n > batchSize) revert BadPayeeCount(n, batchSize);

        // Effects on payees first (the proof check below reverts everything if it fails).
        uint64 tag = uint64(batchIndex + 1);
        uint128 r = uint128(reward);
        for (uint256 i = 0; i < n; i++) {
            address p = payees[i];
            Member storage mem = members[p];
            if (!mem.registered) revert UnregisteredPayee(p);
            uint64 prev = mem.paidTag;
            if (prev == tag) revert DuplicatePayee(p);
            if (prev != 0) revert AlreadyPaid(p, prev - 1);
            mem.paidTag = tag;
            mem.credit += r;
        }

        (uint256 rho, uint256 f) = _publicInputs(batchIndex, words, payees);
        // The verifier returns false (not revert) when given too little gas for the pairing:
        // requiring true turns that into a revert, so gas estimation cannot settle on a failing call.
        if (!verifier.verifyProof(a, b, c, [rho, f])) revert InvalidProof();

        bytes32 commitment = keccak256(abi.encodePacked(words));
        aggregateCommitments[batchIndex] = commitment;
        batchCount = uint64(batchIndex + 1);
        totalCredited += uint128(n) * r;
        emit BatchSubmitted(batchIndex, commitment, payees, msg.sender);
    }

    /// Pull payment of everything credited to the caller.
    function withdraw() external nonReentrant {
        Member storage mem = members[msg.sender];
        uint256 amount = mem.credit;
        if (amount == 0) revert NothingToWithdraw();
        mem.credit = 0;
        totalWithdrawn += amount;
        emit Withdrawn(msg.sender, amount);
        (bool ok,) = msg.sender.call{value: amount}("");
        if (!ok) revert TransferFailed();
    }

    /// MO closes the task after R batches or after the deadline and takes back the uncredited rest.
    function finish() external nonReentrant {
        if (msg.sender != modelOwner) revert NotModelOwner();
        if (finished) revert TaskFinished();
        if (batchCount < batches && block.timestamp <= deadline) {
            revert NotFinishable(batchCount, deadline);
        }
        finished = true;
        uint256 refund = deposit - totalCredited;
        refunded = refund;
        emit Finished(refund, totalCredited);
        if (refund > 0) {
            (bool ok,) = msg.sender.call{value: refund}("");
            if (!ok) revert TransferFailed();
        }
    }
}
