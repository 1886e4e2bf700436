"""Thread layout of the kernels: numba's threads over rows, one BLAS thread per product.

The kernels call BLAS (``np.dot`` inside numba goes to the BLAS that scipy ships) from inside their
own parallel loops over chunks of rows. If that BLAS also started threads for every product, the
two thread pools would fight over the cores (measured: 3-8x slower on 2 cores). So the BLAS that
numba calls is set to one thread, once, before the first kernel runs. numpy's own BLAS, which
relaxsim's kernels never use, is left alone when it is a separate library (as in the PyPI wheels).
"""

from __future__ import annotations

from pathlib import Path

_configured = False


def _blas_controllers():
    """``(kernel BLAS controllers, numpy BLAS controllers)``: the BLAS that scipy ships (which
    the kernels call) and the others (numpy's own, in the PyPI wheels)."""
    import scipy
    import scipy.linalg.cython_blas  # noqa: F401  (loads the library so it can be found)
    from threadpoolctl import ThreadpoolController

    controller = ThreadpoolController()
    scipy_libs = Path(scipy.__file__).resolve().parent.parent / "scipy.libs"
    blas = [lib for lib in controller.lib_controllers if lib.user_api == "blas"]
    own = [lib for lib in blas if Path(lib.filepath).resolve().parent == scipy_libs]
    return (own or blas), [lib for lib in blas if lib not in own]


def set_numpy_blas_threads(n: int) -> None:
    """Threads of numpy's own BLAS (for comparisons that use numpy's products); the kernels' BLAS
    stays at one thread, and other libraries' BLAS (PyTorch's MKL, which PyTorch coordinates with
    its own thread pool) are left alone. With one BLAS shared by numpy and the kernels, nothing
    changes."""
    import numpy

    numpy_libs = Path(numpy.__file__).resolve().parent.parent / "numpy.libs"
    for lib in _blas_controllers()[1]:
        if Path(lib.filepath).resolve().parent == numpy_libs:
            lib.set_num_threads(n)


def single_threaded_kernel_blas() -> None:
    """Set the BLAS behind ``scipy.linalg.cython_blas`` to one thread (idempotent, cheap)."""
    global _configured
    if _configured:
        return
    for lib in _blas_controllers()[0]:  # a shared system BLAS: limited, the kernels need one thread
        lib.set_num_threads(1)
    _configured = True


_query = None


def numba_threads() -> int:
    """``numba.get_num_threads()`` (this thread's count), at a tenth of its cost: the training
    step asks before every compiled pass whether threads pay, and numba's own function takes two
    locks each time. After a first call through numba (which starts its threading layer), the
    threading layer's counter is read directly; numba's function is kept if that is missing."""
    global _query
    if _query is None:
        import numba
        from numba.np.ufunc import parallel

        numba.get_num_threads()  # starts the threading layer
        raw = getattr(parallel, "_get_num_threads", None)
        _query = raw if callable(raw) and raw() == numba.get_num_threads() else \
            numba.get_num_threads
    n = _query()
    return n if n > 0 else _fallback()


def _fallback() -> int:
    import numba

    return numba.get_num_threads()  # raises numba's own error on a broken threading layer
