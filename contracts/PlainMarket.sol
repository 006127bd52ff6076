// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title PlainMarket: the OmniLytics SecModelUpdate contract (the on-chain baseline).
/// @notice Follows the paper (Wang et al., OmniLytics, sec. "Secure model update" and Algorithm 1):
/// states Setup -> Register -> ModelAggregate -> (Register ...) -> OutlierSuppression -> Payment -> Finished.
/// The MO deploys with the reward deposit, sets the whitelist, loads the public model W and calls
/// start(M0, E, B, R, N, mu, m). In each round N DOs register, exchange public keys on-chain
/// (PubKeyInteract), and upload their pairwise-masked model vectors (int256 fixed point, scaled by
/// 1e8) in chunks of at most 250 parameters; the contract sums them per round, where the masks cancel.
/// After R rounds (or exit() by the MO) the contract runs multi-Krum over the round aggregates and
/// pays the DOs of the selected rounds equal shares of the deposit.
/// @dev Choices where the paper is silent, each made so as not to inflate the baseline's gas:
/// - the contract keeps only the running per-round sum (the masked individual vectors are noise by
///   design and are not needed later); sums are taken mod 2^256 (unchecked), so masks may be uniform
///   in Z_{2^256} and still cancel exactly;
/// - A_r = sum_r / N: every complete round has N members, so Krum on the sums ranks rounds exactly as
///   on the means; the MO divides by N (and by 1e8) off-chain;
/// - the l2 distances of Algorithm 1 are computed once per pair (they do not change between the m
///   iterations) and accumulated chunk by chunk, so a large d can be spread over several transactions
///   (suppressOutliers(maxChunks)); the selection itself is Algorithm 1 verbatim;
/// - f = floor(mu * |P|) corrupted rounds; neighbours = |T| - f - 2; m defaults to the largest
///   integer below (1 - 2 mu)|P| - 2 (the paper's bound), at least 1, and never above |P| - f - 2 so
///   every iteration has a neighbour; if |P| < f + 3 Krum is undefined and no round is selected;
/// - a round whose uploads are not all in within roundTimeout seconds can be failed by anyone
///   (A_r = empty, as in the paper); its DOs may register again;
/// - payments are pulled (withdraw), the MO's finish() refunds what was not credited.
contract PlainMarket {
    enum State {
        Setup,
        Register,
        ModelAggregate,
        OutlierSuppression,
        Payment,
        Finished
    }

    uint256 public constant SCALE = 1e8;
    uint256 public constant CHUNK = 250;

    address public immutable modelOwner;
    uint256 public immutable dims;
    uint256 public immutable nChunks;
    uint256 public immutable deposit;
    uint256 public immutable roundTimeout;

    State public state;
    // start() parameters
    uint256 public minDataPoints; // M0
    uint256 public epochs; // E
    uint256 public localBatch; // B
    uint256 public rounds; // R
    uint256 public perRound; // N
    uint256 public muNum;
    uint256 public muDen;
    uint256 public mRequested; // 0 = the paper's bound

    // model
    mapping(uint256 => int256) public model;
    uint256 public modelChunksLoaded; // bitmask

    // DOs
    mapping(address => bool) public whitelisted;
    uint256 public whitelistSize;
    mapping(address => bool) public incorporated; // result already in a completed round
    mapping(address => uint256) public registeredRound; // round + 1 while registered

    // rounds
    uint256 public currentRound;
    uint256 public roundStartedAt;
    mapping(uint256 => address[]) internal members;
    mapping(uint256 => mapping(address => bytes32)) public publicKeys;
    mapping(uint256 => mapping(address => uint256)) public uploadedChunks; // bitmask
    mapping(uint256 => uint256) public uploadsDone; // complete uploads in the round
    mapping(uint256 => mapping(uint256 => int256)) internal sums; // round => index => sum mod 2^256
    uint256[] public successfulRounds; // P

    // outlier suppression
    uint256 public distChunksDone;
    mapping(uint256 => uint256) internal pairDist; // i * |P| + j (i < j, indices into P) => squared l2
    uint256[] public selectedRounds; // P'

    // payment
    mapping(address => uint256) public credit;
    uint256 public totalCredited;
    uint256 public totalWithdrawn;
    uint256 public share;
    uint256 public refunded;
    uint256 private locked = 1;

    event Whitelisted(address indexed dataOwner);
    event ModelLoaded(uint256 chunk);
    event Started(uint256 m0, uint256 epochs, uint256 batch, uint256 rounds, uint256 perRound, uint256 muNum,
        uint256 muDen, uint256 m);
    event Registered(uint256 indexed round, address indexed dataOwner);
    event RoundAggregating(uint256 indexed round);
    event PublicKeyPosted(uint256 indexed round, address indexed dataOwner, bytes32 publicKey);
    event ChunkUploaded(uint256 indexed round, address indexed dataOwner, uint256 chunk);
    event RoundCompleted(uint256 indexed round);
    event RoundFailed(uint256 indexed round);
    event Exited(uint256 round);
    event DistancesAccumulated(uint256 chunksDone);
    event RoundsSelected(uint256[] rounds, uint256 share);
    event Withdrawn(address indexed payee, uint256 amount);
    event Finished(uint256 refund, uint256 totalCredited);

    error WrongState(State have, State want);
    error NotModelOwner();
    error BadParams(string why);
    error NotWhitelisted(address who);
    error AlreadyIncorporated(address who);
    error AlreadyRegistered(address who);
    error NotRoundMember(address who);
    error BadChunk(uint256 chunk);
    error ChunkAlreadyUploaded(uint256 chunk);
    error WrongChunkLength(uint256 got, uint256 expected);
    error ModelNotLoaded();
    error RoundNotExpired();
    error NothingToWithdraw();
    error TransferFailed();
    error Reentrancy();

    modifier onlyMO() {
        if (msg.sender != modelOwner) revert NotModelOwner();
        _;
    }

    modifier inState(State s) {
        if (state != s) revert WrongState(state, s);
        _;
    }

    modifier nonReentrant() {
        if (locked != 1) revert Reentrancy();
        locked = 2;
        _;
        locked = 1;
    }

    constructor(uint256 dims_, uint256 roundTimeout_) payable {
        if (dims_ == 0) revert BadParams("d must be positive");
        uint256 n = (dims_ + CHUNK - 1) / CHUNK;
        if (n > 256) revert BadParams("at most 256 chunks");
        modelOwner = msg.sender;
        dims = dims_;
        nChunks = n;
        deposit = msg.value;
        roundTimeout = roundTimeout_;
    }

    function _chunkLen(uint256 chunk) internal view returns (uint256) {
        uint256 start = chunk * CHUNK;
        uint256 end = start + CHUNK;
        return (end > dims ? dims : end) - start;
    }

    function _allChunks() internal view returns (uint256) {
        return nChunks == 256 ? type(uint256).max : (uint256(1) << nChunks) - 1;
    }

    // ------------------------------------------------------------------ Setup
    function whitelist(address[] calldata dos) external onlyMO inState(State.Setup) {
        for (uint256 i = 0; i < dos.length; i++) {
            if (!whitelisted[dos[i]]) {
                whitelisted[dos[i]] = true;
                whitelistSize += 1;
                emit Whitelisted(dos[i]);
            }
        }
    }

    /// The public model W, scaled by 1e8, one chunk of <= 250 parameters per transaction.
    function loadModel(uint256 chunk, int256[] calldata values) external onlyMO inState(State.Setup) {
        if (chunk >= nChunks) revert BadChunk(chunk);
        if (values.length != _chunkLen(chunk)) revert WrongChunkLength(values.length, _chunkLen(chunk));
        uint256 base = chunk * CHUNK;
        for (uint256 i = 0; i < values.length; i++) {
            model[base + i] = values[i];
        }
        modelChunksLoaded |= uint256(1) << chunk;
        emit ModelLoaded(chunk);
    }

    function start(uint256 m0, uint256 e, uint256 b, uint256 r, uint256 n, uint256 muNum_, uint256 muDen_, uint256 m)
        external
        onlyMO
        inState(State.Setup)
    {
        if (modelChunksLoaded != _allChunks()) revert ModelNotLoaded();
        if (r == 0 || n < 2) revert BadParams("need R >= 1 and N >= 2");
        if (muDen_ == 0 || 2 * muNum_ >= muDen_) revert BadParams("need 0 <= mu < 1/2");
        minDataPoints = m0;
        epochs = e;
        localBatch = b;
        rounds = r;
        perRound = n;
        muNum = muNum_;
        muDen = muDen_;
        mRequested = m;
        state = State.Register;
        emit Started(m0, e, b, r, n, muNum_, muDen_, m);
    }

    // --------------------------------------------------------- Register / aggregate
    function register() external inState(State.Register) {
        if (whitelistSize > 0 && !whitelisted[msg.sender]) revert NotWhitelisted(msg.sender);
        if (incorporated[msg.sender]) revert AlreadyIncorporated(msg.sender);
        uint256 round = currentRound;
        if (registeredRound[msg.sender] == round + 1) revert AlreadyRegistered(msg.sender);
        registeredRound[msg.sender] = round + 1;
        members[round].push(msg.sender);
        emit Registered(round, msg.sender);
        if (members[round].length == perRound) {
            state = State.ModelAggregate;
            roundStartedAt = block.timestamp;
            emit RoundAggregating(round);
        }
    }

    function roundMembers(uint256 round) external view returns (address[] memory) {
        return members[round];
    }

    function _requireMember() internal view returns (uint256 round) {
        round = currentRound;
        if (registeredRound[msg.sender] != round + 1) revert NotRoundMember(msg.sender);
    }

    /// PubKeyInteract: a DO's key-agreement public key for the pairwise masks of this round.
    function postPublicKey(bytes32 pk) external inState(State.ModelAggregate) {
        uint256 round = _requireMember();
        publicKeys[round][msg.sender] = pk;
        emit PublicKeyPosted(round, msg.sender, pk);
    }

    /// ModelAggregate: add one chunk of the caller's masked vector to the round's sum.
    function uploadChunk(uint256 chunk, int256[] calldata values) external inState(State.ModelAggregate) {
        uint256 round = _requireMember();
        if (chunk >= nChunks) revert BadChunk(chunk);
        uint256 bit = uint256(1) << chunk;
        uint256 done = uploadedChunks[round][msg.sender];
        if (done & bit != 0) revert ChunkAlreadyUploaded(chunk);
        uint256 len = _chunkLen(chunk);
        if (values.length != len) revert WrongChunkLength(values.length, len);
        mapping(uint256 => int256) storage s = sums[round];
        uint256 base = chunk * CHUNK;
        unchecked {
            for (uint256 i = 0; i < len; i++) {
                s[base + i] += values[i];
            }
        }
        done |= bit;
        uploadedChunks[round][msg.sender] = done;
        emit ChunkUploaded(round, msg.sender, chunk);
        if (done == _allChunks()) {
            uint256 complete = uploadsDone[round] + 1;
            uploadsDone[round] = complete;
            if (complete == perRound) {
                address[] storage mem = members[round];
                for (uint256 i = 0; i < mem.length; i++) {
                    incorporated[mem[i]] = true;
                }
                successfulRounds.push(round);
                emit RoundCompleted(round);
                _nextRound();
            }
        }
    }

    /// Anyone may fail a round whose uploads are late (the paper's A_r = empty).
    function failRound() external inState(State.ModelAggregate) {
        if (block.timestamp <= roundStartedAt + roundTimeout) revert RoundNotExpired();
        emit RoundFailed(currentRound);
        _nextRound();
    }

    function _nextRound() internal {
        currentRound += 1;
        state = currentRound >= rounds ? State.OutlierSuppression : State.Register;
    }

    /// MO stops collecting; an unfinished current round fails.
    function exit() external onlyMO {
        if (state != State.Register && state != State.ModelAggregate) revert WrongState(state, State.Register);
        if (members[currentRound].length > 0) emit RoundFailed(currentRound);
        emit Exited(currentRound);
        state = State.OutlierSuppression;
    }

    function roundSum(uint256 round) external view returns (int256[] memory out) {
        out = new int256[](dims);
        for (uint256 i = 0; i < dims; i++) {
            out[i] = sums[round][i];
        }
    }

    function successfulRoundCount() external view returns (uint256) {
        return successfulRounds.length;
    }

    function selectedRoundList() external view returns (uint256[] memory) {
        return selectedRounds;
    }

    // ------------------------------------------------------------- Outlier suppression
    /// Accumulate pairwise squared distances over up to maxChunks more chunks; when all chunks are
    /// in, run multi-Krum (Algorithm 1), credit the DOs of the selected rounds and enter Payment.
    function suppressOutliers(uint256 maxChunks) external inState(State.OutlierSuppression) {
        uint256 p = successfulRounds.length;
        uint256 c = distChunksDone;
        uint256 stop = c + maxChunks > nChunks ? nChunks : c + maxChunks;
        if (p >= 2) {
            for (; c < stop; c++) {
                _accumulate(c, p);
            }
        } else {
            c = nChunks;
        }
        distChunksDone = c;
        emit DistancesAccumulated(c);
        if (c == nChunks) _select(p);
    }

    function _accumulate(uint256 chunk, uint256 p) internal {
        uint256 base = chunk * CHUNK;
        uint256 len = _chunkLen(chunk);
        uint256[] memory rid = successfulRounds;
        uint256[] memory acc = new uint256[](p * p);
        int256[] memory col = new int256[](p);
        for (uint256 k = 0; k < len; k++) {
            for (uint256 i = 0; i < p; i++) {
                col[i] = sums[rid[i]][base + k];
            }
            for (uint256 i = 0; i < p; i++) {
                for (uint256 j = i + 1; j < p; j++) {
                    acc[i * p + j] = _satAdd(acc[i * p + j], _sqDiff(col[i], col[j]));
                }
            }
        }
        for (uint256 i = 0; i < p; i++) {
            for (uint256 j = i + 1; j < p; j++) {
                pairDist[i * p + j] = _satAdd(pairDist[i * p + j], acc[i * p + j]);
            }
        }
    }

    /// (a - b)^2, saturating: a Byzantine DO's huge values must not make Krum revert (and stall payment).
    function _sqDiff(int256 a, int256 b) internal pure returns (uint256) {
        uint256 d;
        unchecked {
            d = a >= b ? uint256(a) - uint256(b) : uint256(b) - uint256(a);
        }
        if (d >= 1 << 128) return type(uint256).max;
        return d * d;
    }

    function _satAdd(uint256 x, uint256 y) internal pure returns (uint256) {
        unchecked {
            uint256 z = x + y;
            return z < x ? type(uint256).max : z;
        }
    }

    function _dist(uint256 i, uint256 j, uint256 p) internal view returns (uint256) {
        return i < j ? pairDist[i * p + j] : pairDist[j * p + i];
    }

    function krumParams(uint256 p) public view returns (uint256 f, uint256 m) {
        f = (muNum * p) / muDen;
        if (p < f + 3) return (f, 0);
        uint256 cap = p - f - 2;
        if (mRequested > 0) {
            m = mRequested;
        } else {
            // largest integer strictly below (1 - 2mu) p - 2 = (p (den - 2 num) - 2 den) / den
            uint256 num = p * (muDen - 2 * muNum);
            m = num > 2 * muDen ? (num - 2 * muDen - 1) / muDen : 0;
            if (m == 0) m = 1;
        }
        if (m > cap) m = cap;
    }

    /// S(r) of Algorithm 1: the sum of the nb smallest distances from r to the other rounds left in T.
    function _score(uint256[] memory dist, bool[] memory taken, uint256[] memory tmp, uint256 r, uint256 p,
        uint256 nb) internal pure returns (uint256 score) {
        uint256 cnt = 0;
        for (uint256 o = 0; o < p; o++) {
            if (o == r || taken[o]) continue;
            uint256 v = dist[r * p + o];
            uint256 pos = cnt; // insertion into the sorted prefix tmp[0..cnt)
            while (pos > 0 && tmp[pos - 1] > v) {
                tmp[pos] = tmp[pos - 1];
                pos--;
            }
            tmp[pos] = v;
            cnt++;
        }
        for (uint256 q = 0; q < nb; q++) {
            score = _satAdd(score, tmp[q]);
        }
    }

    function _select(uint256 p) internal {
        (uint256 f, uint256 m) = krumParams(p);
        uint256[] memory dist = new uint256[](p * p);
        for (uint256 i = 0; i < p; i++) {
            for (uint256 j = i + 1; j < p; j++) {
                uint256 v = pairDist[i * p + j];
                dist[i * p + j] = v;
                dist[j * p + i] = v;
            }
        }
        bool[] memory taken = new bool[](p);
        uint256[] memory tmp = new uint256[](p);
        for (uint256 it = 0; it < m; it++) {
            // |T| = p - it; neighbours = |T| - f - 2 >= 1 by krumParams
            uint256 idx = _argminScore(dist, taken, tmp, p, p - it - f - 2);
            taken[idx] = true;
            selectedRounds.push(successfulRounds[idx]);
        }
        _credit(m);
    }

    function _argminScore(uint256[] memory dist, bool[] memory taken, uint256[] memory tmp, uint256 p,
        uint256 nb) internal pure returns (uint256 bestIdx) {
        uint256 best;
        bool found;
        for (uint256 r = 0; r < p; r++) {
            if (taken[r]) continue;
            uint256 score = _score(dist, taken, tmp, r, p, nb);
            if (!found || score < best) {
                best = score;
                bestIdx = r;
                found = true;
            }
        }
    }

    /// Equal shares of the deposit to the DOs of the selected rounds; the dust stays for the MO.
    function _credit(uint256 m) internal {
        uint256 payees = m * perRound;
        uint256 each = payees == 0 ? 0 : deposit / payees;
        share = each;
        if (each > 0) {
            for (uint256 s = 0; s < m; s++) {
                address[] storage mem = members[selectedRounds[s]];
                for (uint256 i = 0; i < mem.length; i++) {
                    credit[mem[i]] += each;
                }
            }
            totalCredited = each * payees;
        }
        state = State.Payment;
        emit RoundsSelected(selectedRounds, each);
    }

    // ----------------------------------------------------------------- Payment
    function withdraw() external nonReentrant {
        uint256 amount = credit[msg.sender];
        if (amount == 0) revert NothingToWithdraw();
        credit[msg.sender] = 0;
        totalWithdrawn += amount;
        emit Withdrawn(msg.sender, amount);
        (bool ok,) = msg.sender.call{value: amount}("");
        if (!ok) revert TransferFailed();
    }

    /// MO ends the session and takes back what was not credited (rounding dust, or everything
    /// if no round was selected).
    function finish() external onlyMO inState(State.Payment) nonReentrant {
        state = State.Finished;
        uint256 refund = deposit - totalCredited;
        refunded = refund;
        emit Finished(refund, totalCredited);
        if (refund > 0) {
            (bool ok,) = msg.sender.call{value: refund}("");
            if (!ok) revert TransferFailed();
        }
    }
}
