"""Every tuning constant of the kernels, and the fast-math flags of the network passes and the
random draws (the programming writes of :mod:`~relaxsim.kernels.programming` compile with none),
in one place.

Each is chosen for speed or for determinism, never for a result: whatever the values, every kernel
gives the same bytes for the same inputs on any number of threads (the tests check it), except
the fast-math flags, which are part of the numbers and must not change without new fingerprints.
"""

# Fast-math flags of the passes and the draws: only "nsz" (the sign of a zero may differ). No contraction
# into fused multiply-adds, no reassociation, no reciprocals: with those, LLVM's result depends on
# what it inlined, which differs between a process that compiled the kernels and one that loaded
# them from numba's cache (measured: last-bit differences), and every run must give the same bytes.
# No nnan/ninf either, so NaN and Inf still propagate to the divergence checks.
FASTMATH = {"nsz"}

# Element-wise loops: the same flags; error_model="numpy" lets divisions vectorise (no
# zero-division branch).
ELEMENTWISE = FASTMATH

# Rows of the weight gradients per parallel task in the backward pass: at least this many, and
# about 8 tasks per gradient (a function of N only, for determinism; each task re-reads h_t).
GRAD_BLOCK = 16

# Below this many multiply-adds per forward pass, the kernels run their chunks serially.
PARALLEL_MIN_WORK = 4_000_000

# A chunk of rows should hold at least this many multiply-adds per bank product: below it, the
# per-call cost of BLAS and of the element loops dominates (small N). (2^21 rather than 2^20:
# 5-13 % faster steps at N = 64 and 128, batch 256, measured in alternation.)
CHUNK_MIN_WORK = 1 << 21

# Random draws: pairs of draws per parallel task (fixed: the bytes never depend on the thread
# count), and the number of draws (about 0.2 ms of work) below which one thread fills the array.
BLOCK_PAIRS = 4096
PARALLEL_MIN = 1 << 16

# Elements per parallel task of a programming write without noise (clip and quantise only).
CLIP_BLOCK = 1 << 13
