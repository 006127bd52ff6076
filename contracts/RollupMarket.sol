// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title RollupMarket: one Groth16 proof and t+1 server signatures per batch of data-owner updates.
/// @notice The model owner (MO) deploys with the reward deposit and the task: N, N_min, d, k, B, R,
/// deadline, the verifier, the server committee (n signing addresses, their TLS certificate
/// fingerprints, the threshold t+1) and the model hash. Off-chain servers validate a batch of DO
/// updates on shares, open its aggregate, prove it jointly, verify the proof themselves and sign
/// the batch digest; anyone relays submitBatch (PROTOCOL.md version 2, steps 3-6).
///
/// Public inputs, built here from calldata and state, never taken from the caller:
///     [ctx, W_0, ..., W_{M-1}]
///     ctx = keccak256(abi.encode(chainid, address(this), taskId, batchIndex, modelVersion,
///                                keccak256(abi.encodePacked(payees)))) mod r
/// The words are public inputs themselves (the circuit constrains W_m === packed sum m), so a
/// proof fixes the whole aggregate; ctx binds chain, contract, task, batch, payees and model.
/// The model version of batch i is i: the public model the batch's DOs trained from is w_0 plus
/// the i aggregates before it.
///
/// Batch digest each committee member signs (EIP-191 personal_sign of the 32-byte digest,
/// i.e. keccak256("\x19Ethereum Signed Message:\n32" || digest); low-s, v in {27, 28}):
///     digest = keccak256(abi.encode(chainid, address(this), batchIndex,
///                                   keccak256(abi.encodePacked(payees)),
///                                   keccak256(abi.encodePacked(words)),
///                                   keccak256(abi.encodePacked(a0, a1, b00, b01, b10, b11, c0, c1))))
/// Holding the proving key (every party has it) therefore gives no power: a batch without t+1
/// committee signatures is refused, and committee members sign only batches they validated.
/// @dev Who may call submitBatch: anyone (a relayer cannot change payees, words or proof without
/// invalidating the signatures). Payments are pulled (withdraw), with checks-effects-interactions
/// and a reentrancy lock. Conservation: deposit == totalCredited + refund (refund paid once).
/// Task parameters are immutables; readers compare the runtime code with the canonical build with
/// the immutable ranges masked (contracts/canonical.py) and read the parameters through getters.
contract RollupMarket {
    uint256 internal constant R_FIELD =
        21888242871839275222246405745257275088548364400416034343698204186575808495617;
    /// secp256k1n / 2: signatures with a larger s are the malleable twin and are refused.
    uint256 internal constant HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;

    struct Task {
        uint256 batchSize; // N: max DOs per batch
        uint256 minBatch; // N_min: min DOs per batch (>= 2: one DO's update alone is never published)
        uint256 dims; // d
        uint256 bits; // k
        uint256 normBound; // B
        uint256 reward; // wei per accepted DO
        uint256 batches; // R
        uint256 deadline; // unix time; no batch after it
        uint256 nWords; // M
        uint256 wordBits; // w
        uint256 perWord; // c
        uint256 chunks; // K: circuits per batch (1 = submitBatch; K > 1 = submitChunkedBatch, d = K chunks of dims)
        int256 minScore; // a payee's contribution score must exceed it (>= 0; 0 = any positive agreement)
    }

    // ---- immutable task description ----
    address public immutable verifier;
    bytes4 public immutable verifySelector; // verifyProof(uint256[2],uint256[2][2],uint256[2],uint256[M+1])
    address public immutable modelOwner;
    bytes32 public immutable taskId;
    uint256 public immutable batchSize;
    uint256 public immutable minBatch;
    uint256 public immutable dims;
    uint256 public immutable bits;
    uint256 public immutable normBound;
    uint256 public immutable reward;
    uint256 public immutable batches;
    uint256 public immutable deadline;
    uint256 public immutable nWords;
    uint256 public immutable wordBits;
    uint256 public immutable perWord;
    uint256 public immutable chunks; // K (chunked tasks: every chunk is the same (N, dims, k, B) circuit)
    uint256 public immutable wordLimit; // 2^(w*c): every packed word must be below it
    // contribution scores (prover/contribution.py, circuits/params.py): s_i + scoreOffset in
    // scoreBits bits, scoresPerWord per public word, nScoreWords words after the M aggregate words
    int256 public immutable minScore;
    uint256 public immutable scoreOffset; // (N-1)·min(B, d·2^(2k-2))
    uint256 public immutable scoreBits; // bitlen(2·scoreOffset) + 1
    uint256 public immutable scoresPerWord; // floor(253 / scoreBits)
    uint256 public immutable nScoreWords; // ceil(N / scoresPerWord)
    bytes32 public immutable modelHash;
    uint256 public immutable deposit;
    bool public immutable whitelistOnly;
    uint256 public immutable threshold; // t+1 distinct committee signatures per batch
    uint256 public immutable deployBlock; // readers query logs from here
    string public modelURI;

    // ---- the server committee (fixed at deployment) ----
    address[] internal committee; // signing addresses, server j at index j-1
    bytes32[] internal fingerprints; // sha256 of server j's TLS certificate (DER)
    mapping(address => uint256) internal memberSlot; // index + 1; 0 = not a member

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
    /// The words are in the log: readers use events only, never calldata (a batch relayed through
    /// another contract has no top-level calldata to read).
    event BatchSubmitted(uint256 indexed batchIndex, bytes32 aggregateCommitment, uint256[] words,
        address[] payees, int256[] scores, uint256[] amounts, address submitter);
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
    error BadPayeeCount(uint256 got, uint256 min, uint256 max);
    error UnregisteredPayee(address who);
    error DuplicatePayee(address who);
    error AlreadyPaid(address who, uint256 batchIndex);
    error InvalidProof();
    error BadSignature(uint256 index);
    error NotCommittee(uint256 index, address signer);
    error DuplicateSigner(address signer);
    error NotEnoughSignatures(uint256 got, uint256 required);
    error NothingToWithdraw();
    error TransferFailed();
    error Reentrancy();
    error NotModelOwner();
    error WrongChunkCount(uint256 got, uint256 expected);
    error ChunkedTask(uint256 chunks);
    error NotFinishable(uint256 batchesDone, uint256 deadline);
    error WrongScoreCount(uint256 got, uint256 expected);
    error ScoreOutOfRange(uint256 index, int256 score);
    error LowScore(uint256 index, int256 score);

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
        address[] memory whitelist_,
        address[] memory committee_,
        bytes32[] memory fingerprints_,
        uint256 threshold_
    ) payable {
        if (verifier_.code.length == 0) revert BadParams("verifier has no code");
        if (t.batchSize == 0 || t.dims == 0 || t.batches == 0) revert BadParams("N, d and R must be positive");
        if (t.minBatch < 2 || t.minBatch > t.batchSize) revert BadParams("N_min must be in [2, N]");
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
        if (t.chunks == 0 || t.chunks > 4096) revert BadParams("K must be in [1, 4096]");
        if (t.minScore < 0) revert BadParams("minScore must be >= 0");
        if (t.deadline <= block.timestamp) revert BadParams("deadline in the past");
        if (t.batches >= type(uint64).max || t.reward >= type(uint128).max / (t.batchSize * t.batches)) {
            revert BadParams("R or reward too large");
        }
        uint256 sOff;
        uint256 sBits;
        {
            uint256 maxSq = t.dims << (2 * t.bits - 2);
            sOff = (t.batchSize - 1) * (t.normBound < maxSq ? t.normBound : maxSq);
            for (uint256 x = 2 * sOff; x != 0; x >>= 1) sBits++;
            sBits += 1;
            if (sBits > 253) revert BadParams("score width exceeds 253 bits");
        }
        uint256 n = committee_.length;
        if (n == 0 || n > 256 || fingerprints_.length != n) revert BadParams("committee: 1..256 members, one fingerprint each");
        // t+1 signatures with 2t+1 <= n <= 3t+1 servers: every round runs on 2t+1 of them (a named
        // server is left out at n >= 2t+2), and any two such rounds share t+1 servers, one of them
        // honest, which holds one agreed set per index (so no index gets two aggregates or two
        // signed batches from honest servers). n = 2t+1 is the majority case.
        if (threshold_ == 0 || 2 * threshold_ > n + 1 || n + 2 > 3 * threshold_)
            revert BadParams("threshold must be t+1 with 2t+1 <= n <= 3t+1");
        uint256 required = t.batchSize * t.batches * t.reward;
        if (msg.value < required) revert DepositTooSmall(msg.value, required);
        for (uint256 i = 0; i < n; i++) {
            address a = committee_[i];
            if (a == address(0) || memberSlot[a] != 0) revert BadParams("committee: zero or repeated address");
            memberSlot[a] = i + 1;
            committee.push(a);
            fingerprints.push(fingerprints_[i]);
        }

        verifier = verifier_;
        minScore = t.minScore;
        scoreOffset = sOff;
        scoreBits = sBits;
        scoresPerWord = 253 / sBits;
        nScoreWords = (t.batchSize + 253 / sBits - 1) / (253 / sBits);
        verifySelector = bytes4(keccak256(abi.encodePacked(
            "verifyProof(uint256[2],uint256[2][2],uint256[2],uint256[",
            _decimal(t.nWords + 1 + (t.batchSize + 253 / sBits - 1) / (253 / sBits)), "])")));
        modelOwner = msg.sender;
        batchSize = t.batchSize;
        minBatch = t.minBatch;
        dims = t.dims;
        bits = t.bits;
        normBound = t.normBound;
        reward = t.reward;
        batches = t.batches;
        deadline = t.deadline;
        nWords = t.nWords;
        wordBits = t.wordBits;
        perWord = t.perWord;
        chunks = t.chunks;
        wordLimit = 1 << (t.wordBits * t.perWord);
        modelHash = modelHash_;
        modelURI = modelURI_;
        deposit = msg.value;
        whitelistOnly = whitelist_.length > 0;
        threshold = threshold_;
        deployBlock = block.number;
        bytes32 id = keccak256(abi.encode(t, verifier_, msg.sender, modelHash_, keccak256(bytes(modelURI_)),
            keccak256(abi.encodePacked(committee_)), keccak256(abi.encodePacked(fingerprints_)), threshold_));
        taskId = id;
        for (uint256 i = 0; i < whitelist_.length; i++) {
            whitelisted[whitelist_[i]] = true;
            emit Whitelisted(whitelist_[i]);
        }
        emit TaskCreated(id, msg.sender, verifier_, msg.value, modelHash_, modelURI_);
    }

    function _decimal(uint256 v) internal pure returns (bytes memory out) {
        if (v == 0) return "0";
        uint256 len;
        for (uint256 x = v; x != 0; x /= 10) len++;
        out = new bytes(len);
        for (; v != 0; v /= 10) out[--len] = bytes1(uint8(48 + v % 10));
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

    /// The public model version the next batch's DOs must have trained from (= batches so far).
    function modelVersion() external view returns (uint256) {
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

    /// The server committee: signing addresses and TLS certificate fingerprints, server j at j-1.
    function committeeMembers() external view returns (address[] memory, bytes32[] memory) {
        return (committee, fingerprints);
    }

    /// ctx for the next batch with these payees (the first public input).
    function bindingContext(address[] calldata payees) external view returns (uint256) {
        return _ctx(batchCount, payees);
    }

    /// The digest committee members sign for the next batch with this proof, words and payees.
    function batchDigest(
        uint256[2] calldata a,
        uint256[2][2] calldata b,
        uint256[2] calldata c,
        uint256[] calldata words,
        address[] calldata payees,
        int256[] calldata scores
    ) external view returns (bytes32) {
        return _digest(batchCount, keccak256(abi.encode(a, b, c)), keccak256(abi.encodePacked(words)),
            keccak256(abi.encodePacked(payees)), keccak256(abi.encodePacked(scores)));
    }

    /// The packed score words S_0..S_{K-1} for these payee scores (empty slots score 0).
    function packScores(int256[] calldata scores) external view returns (uint256[] memory) {
        return _packScores(scores);
    }

    function _packScores(int256[] calldata scores) internal view returns (uint256[] memory out) {
        uint256 n = batchSize;
        uint256 cs = scoresPerWord;
        uint256 sw = scoreBits;
        uint256 off = scoreOffset;
        out = new uint256[](nScoreWords);
        for (uint256 i = 0; i < n; i++) {
            uint256 v = off;
            if (i < scores.length) {
                int256 s = scores[i];
                if (s > int256(off) || s < -int256(off)) revert ScoreOutOfRange(i, s);
                v = uint256(s + int256(off));
            }
            out[i / cs] |= v << (sw * (i % cs));
        }
    }

    function _ctx(uint256 batchIndex, address[] calldata payees) internal view returns (uint256) {
        return uint256(keccak256(abi.encode(block.chainid, address(this), taskId, batchIndex, batchIndex,
            keccak256(abi.encodePacked(payees))))) % R_FIELD;
    }

    /// proofHash = keccak256(abi.encode(a, b, c)): the 8 words a0 a1 b00 b01 b10 b11 c0 c1.
    function _digest(uint256 batchIndex, bytes32 proofHash, bytes32 wordsHash, bytes32 payeesHash,
        bytes32 scoresHash) internal view returns (bytes32) {
        return keccak256(abi.encode(block.chainid, address(this), batchIndex, payeesHash, wordsHash, proofHash,
            scoresHash));
    }

    /// Require >= threshold distinct committee signatures over the EIP-191 form of `digest`.
    function _checkSignatures(bytes32 digest, bytes[] calldata signatures) internal view {
        bytes32 h = keccak256(abi.encodePacked("\x19Ethereum Signed Message:\n32", digest));
        uint256 seen; // bit j-1 set once server j signed (committee size <= 256)
        uint256 count;
        for (uint256 i = 0; i < signatures.length; i++) {
            bytes calldata sig = signatures[i];
            if (sig.length != 65) revert BadSignature(i);
            bytes32 r = bytes32(sig[0:32]);
            bytes32 s = bytes32(sig[32:64]);
            uint8 v = uint8(sig[64]);
            if ((v != 27 && v != 28) || uint256(s) > HALF_N) revert BadSignature(i);
            address signer = ecrecover(h, v, r, s);
            if (signer == address(0)) revert BadSignature(i);
            uint256 slot = memberSlot[signer];
            if (slot == 0) revert NotCommittee(i, signer);
            uint256 bit = 1 << (slot - 1);
            if (seen & bit != 0) revert DuplicateSigner(signer);
            seen |= bit;
            count++;
        }
        if (count < threshold) revert NotEnoughSignatures(count, threshold);
    }

    /// The proof against [ctx, W_0..W_{M-1}, S_0..S_{K-1}], ABI-encoded as the verifier's static
    /// uint256[M+K+1]; S packed here from the posted scores.
    /// The verifier returns false (not revert) when given too little gas for the pairing:
    /// requiring true turns that into a revert, so gas estimation cannot settle on a failing call.
    function _verify(
        uint256[2] calldata a,
        uint256[2][2] calldata b,
        uint256[2] calldata c,
        uint256 ctx,
        uint256[] calldata words,
        int256[] calldata scores
    ) internal view returns (bool) {
        uint256 limit = wordLimit;
        for (uint256 j = 0; j < words.length; j++) {
            if (words[j] >= limit) revert WordTooLarge(j);
        }
        bytes memory input = abi.encodePacked(verifySelector, abi.encode(a, b, c), ctx, words, _packScores(scores));
        (bool ok, bytes memory ret) = verifier.staticcall(input);
        return ok && ret.length == 32 && abi.decode(ret, (uint256)) == 1;
    }

    /// Verify one batch (t+1 committee signatures, then the proof), record its aggregate, credit payees.
    /// @param words the packed aggregate (M words, each < 2^(w*c))
    /// @param payees the DOs whose valid updates are in the aggregate (N_min..N, registered, unpaid)
    /// @param scores each payee's contribution score, slot order (proven: packed into public inputs)
    /// @param signatures 65-byte (r, s, v) signatures of committee members over the batch digest
    function submitBatch(
        uint256[2] calldata a,
        uint256[2][2] calldata b,
        uint256[2] calldata c,
        uint256[] calldata words,
        address[] calldata payees,
        int256[] calldata scores,
        bytes[] calldata signatures
    ) external {
        // No reentrancy lock: the only external call is a STATICCALL to the verifier.
        if (finished) revert TaskFinished();
        if (block.timestamp > deadline) revert DeadlinePassed(block.timestamp, deadline);
        if (chunks != 1) revert ChunkedTask(chunks); // a chunked task pays only for every chunk at once
        uint256 batchIndex = batchCount;
        if (batchIndex >= batches) revert AllBatchesDone(batches);
        if (words.length != nWords) revert WrongWordCount(words.length, nWords);
        if (payees.length < minBatch || payees.length > batchSize) {
            revert BadPayeeCount(payees.length, minBatch, batchSize);
        }
        if (scores.length != payees.length) revert WrongScoreCount(scores.length, payees.length);

        bytes32 commitment = keccak256(abi.encodePacked(words));
        _checkSignatures(_digest(batchIndex, keccak256(abi.encode(a, b, c)), commitment,
            keccak256(abi.encodePacked(payees)), keccak256(abi.encodePacked(scores))), signatures);

        // Effects on payees first (payee checks, credits, record, event); the proof check below
        // reverts all of it if it fails.
        _settle(batchIndex, commitment, words, payees, scores);
        if (!_verify(a, b, c, _ctx(batchIndex, payees), words, scores)) revert InvalidProof();
    }

    /// Credit the payees by score, record the aggregate, emit the event (both submit paths).
    function _settle(uint256 batchIndex, bytes32 commitment, uint256[] memory words, address[] calldata payees,
        int256[] memory total) internal {
        (uint256[] memory amounts, uint256 paid) = _credit(payees, batchIndex, total);
        aggregateCommitments[batchIndex] = commitment;
        batchCount = uint64(batchIndex + 1);
        totalCredited += uint128(paid);
        emit BatchSubmitted(batchIndex, commitment, words, payees, total, amounts, msg.sender);
    }

    // ---------------------------------------------------------------- chunked batches (K > 1)
    // A model larger than one circuit is split into K chunks of `dims` coordinates (the last one
    // zero-padded); every chunk is the same circuit, with its own norm bound B (per-chunk clipping),
    // so one verifier serves all. A batch is K proofs over the SAME payees, settled at once:
    //     ctx_i  = keccak256(abi.encode(CHUNK_TAG, chainid, address(this), taskId, batchIndex,
    //                                   modelVersion, keccak256(abi.encodePacked(payees)), i, K)) mod r
    //     acc_0 = 0, acc_{i+1} = keccak256(abi.encode(acc_i, keccak256(abi.encodePacked(words[i])),
    //                                                 keccak256(abi.encode(proofs[i]))))
    //     digest = keccak256(abi.encode(CHUNK_TAG, chainid, address(this), batchIndex,
    //                                   keccak256(abi.encodePacked(payees)), K, acc_K))
    // The chunk index in ctx_i means a chunk proof verifies only at its own position (no swap), the
    // batch index and payees that it verifies only in this batch (no replay); the tag keeps both
    // preimages apart from the unchunked ctx and digest. proofs[i] = (a0, a1, b00, b01, b10, b11, c0, c1).
    bytes32 internal constant CHUNK_TAG = keccak256("omniplus.RollupMarket.chunked.v1");

    /// ctx of chunk `index` for the next batch with these payees.
    function chunkContext(address[] calldata payees, uint256 index) external view returns (uint256) {
        return _chunkCtx(batchCount, keccak256(abi.encodePacked(payees)), index);
    }

    /// The digest committee members sign for the next chunked batch.
    function chunkedBatchDigest(uint256[8][] calldata proofs, uint256[][] calldata words,
        address[] calldata payees, int256[][] calldata scores) external view returns (bytes32) {
        return _chunkedDigest(batchCount, proofs, words, keccak256(abi.encodePacked(payees)), scores);
    }

    function _chunkCtx(uint256 batchIndex, bytes32 payeesHash, uint256 index) internal view returns (uint256) {
        return uint256(keccak256(abi.encode(CHUNK_TAG, block.chainid, address(this), taskId, batchIndex, batchIndex,
            payeesHash, index, chunks))) % R_FIELD;
    }

    function _chunkedDigest(uint256 batchIndex, uint256[8][] calldata proofs, uint256[][] calldata words,
        bytes32 payeesHash, int256[][] calldata scores) internal view returns (bytes32) {
        bytes32 acc;
        for (uint256 i = 0; i < proofs.length; i++) {
            acc = keccak256(abi.encode(acc, keccak256(abi.encodePacked(words[i])), keccak256(abi.encode(proofs[i])),
                keccak256(abi.encodePacked(scores[i]))));
        }
        return keccak256(abi.encode(CHUNK_TAG, block.chainid, address(this), batchIndex, payeesHash, chunks, acc));
    }

    function _verifyChunk(uint256[8] calldata proof, uint256[] calldata words, int256[] calldata scores, uint256 ctx)
        internal view returns (bool)
    {
        uint256 limit = wordLimit;
        for (uint256 j = 0; j < words.length; j++) {
            if (words[j] >= limit) revert WordTooLarge(j);
        }
        bytes memory input = abi.encodePacked(verifySelector, abi.encode(proof), ctx, words, _packScores(scores));
        (bool ok, bytes memory ret) = verifier.staticcall(input);
        return ok && ret.length == 32 && abi.decode(ret, (uint256)) == 1;
    }

    /// Effects on payees first (a failing proof afterwards reverts everything): registered, not yet
    /// paid, no duplicate, score above minScore; the batch budget reward·n is split by score,
    /// floor(budget·s_i / sum s) each (prover/contribution.split_budget); the dust stays in the task
    /// and goes back to the MO at finish(). Returns (amounts, their sum).
    function _credit(address[] calldata payees, uint256 batchIndex, int256[] memory total)
        internal returns (uint256[] memory amounts, uint256 paid)
    {
        uint64 tag = uint64(batchIndex + 1);
        uint256 n = payees.length;
        int256 floorScore = minScore;
        uint256 sum;
        for (uint256 i = 0; i < n; i++) {
            if (total[i] <= floorScore) revert LowScore(i, total[i]);
            sum += uint256(total[i]);
        }
        uint256 budget = reward * n;
        amounts = new uint256[](n);
        for (uint256 i = 0; i < n; i++) {
            address p = payees[i];
            Member storage mem = members[p];
            if (!mem.registered) revert UnregisteredPayee(p);
            uint64 prev = mem.paidTag;
            if (prev == tag) revert DuplicatePayee(p);
            if (prev != 0) revert AlreadyPaid(p, prev - 1);
            mem.paidTag = tag;
            uint256 amount = _mulDiv(budget, uint256(total[i]), sum);
            amounts[i] = amount;
            paid += amount;
            mem.credit += uint128(amount);
        }
    }

    /// floor(x·y / d) with a 512-bit product (scores may reach 2^253, budgets 2^128); requires
    /// x·y / d < 2^256, which holds here since y <= d.
    function _mulDiv(uint256 x, uint256 y, uint256 d) internal pure returns (uint256 result) {
        unchecked {
            uint256 p0 = x * y;
            uint256 mm = mulmod(x, y, type(uint256).max);
            uint256 p1 = mm - p0 - (mm < p0 ? 1 : 0);
            if (p1 == 0) return p0 / d;
            require(p1 < d, "mulDiv overflow");
            uint256 rem = mulmod(x, y, d);
            p1 -= rem > p0 ? 1 : 0;
            p0 -= rem;
            uint256 twos = d & (~d + 1);
            d /= twos;
            p0 /= twos;
            twos = (0 - twos) / twos + 1;
            p0 |= p1 * twos;
            uint256 inv = (3 * d) ^ 2;
            inv *= 2 - d * inv;
            inv *= 2 - d * inv;
            inv *= 2 - d * inv;
            inv *= 2 - d * inv;
            inv *= 2 - d * inv;
            inv *= 2 - d * inv;
            result = p0 * inv;
        }
    }

    /// Every chunk's proof against [ctx_i, words_i]; returns all words, chunk 0 first (for the event).
    function _verifyChunks(uint256 batchIndex, uint256[8][] calldata proofs, uint256[][] calldata words,
        int256[][] calldata scores, bytes32 payeesHash) internal view
    {
        for (uint256 i = 0; i < proofs.length; i++) {
            uint256 ctx = _chunkCtx(batchIndex, payeesHash, i);
            if (!_verifyChunk(proofs[i], words[i], scores[i], ctx)) revert InvalidProof();
        }
    }

    /// All chunks' words, chunk 0 first (for the commitment and the event).
    function _chunkWords(uint256[][] calldata words) internal view returns (uint256[] memory all) {
        uint256 m = nWords;
        all = new uint256[](words.length * m);
        for (uint256 i = 0; i < words.length; i++) {
            for (uint256 j = 0; j < m; j++) all[i * m + j] = words[i][j];
        }
    }

    /// Verify one chunked batch (t+1 committee signatures over all chunks, then every chunk's proof),
    /// record its aggregate (all chunks' words, chunk 0 first), credit the payees once.
    /// @param proofs one proof per chunk, chunk order
    /// @param words M words per chunk, chunk order
    /// @param scores per chunk, each payee's partial score (slot order); a payee is paid by the sum
    function submitChunkedBatch(
        uint256[8][] calldata proofs,
        uint256[][] calldata words,
        address[] calldata payees,
        int256[][] calldata scores,
        bytes[] calldata signatures
    ) external {
        if (finished) revert TaskFinished();
        if (block.timestamp > deadline) revert DeadlinePassed(block.timestamp, deadline);
        if (chunks == 1) revert ChunkedTask(1); // unchunked tasks settle through submitBatch
        uint256 batchIndex = batchCount;
        if (batchIndex >= batches) revert AllBatchesDone(batches);
        int256[] memory total = _chunkedShapes(proofs.length, words, payees.length, scores);
        bytes32 payeesHash = keccak256(abi.encodePacked(payees));

        _checkSignatures(_chunkedDigest(batchIndex, proofs, words, payeesHash, scores), signatures);
        uint256[] memory all = _chunkWords(words);
        _settle(batchIndex, keccak256(abi.encodePacked(all)), all, payees, total);
        _verifyChunks(batchIndex, proofs, words, scores, payeesHash);
    }

    /// Shape checks of a chunked batch (K proofs, K×M words, N_min..N payees, K×n scores); returns
    /// each payee's total score (the sum of its proven per-chunk partial scores).
    function _chunkedShapes(uint256 nProofs, uint256[][] calldata words, uint256 n, int256[][] calldata scores)
        internal view returns (int256[] memory total)
    {
        uint256 k = chunks;
        if (nProofs != k || words.length != k) revert WrongChunkCount(nProofs == k ? words.length : nProofs, k);
        uint256 m = nWords;
        for (uint256 i = 0; i < k; i++) {
            if (words[i].length != m) revert WrongWordCount(words[i].length, m);
        }
        if (n < minBatch || n > batchSize) revert BadPayeeCount(n, minBatch, batchSize);
        if (scores.length != k) revert WrongChunkCount(scores.length, k);
        total = new int256[](n);
        for (uint256 i = 0; i < k; i++) {
            if (scores[i].length != n) revert WrongScoreCount(scores[i].length, n);
            for (uint256 j = 0; j < n; j++) total[j] += scores[i][j];
        }
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
