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


def single_threaded_kernel_blas() -> None:
    """Set the BLAS behind ``scipy.linalg.cython_blas`` to one thread (idempotent, cheap)."""
    global _configured
    if _configured:
        return
    import scipy
    import scipy.linalg.cython_blas  # noqa: F401  (loads the library so it can be found)
    from threadpoolctl import ThreadpoolController

    controller = ThreadpoolController()
    scipy_libs = Path(scipy.__file__).resolve().parent.parent / "scipy.libs"
    blas = [lib for lib in controller.lib_controllers if lib.user_api == "blas"]
    own = [lib for lib in blas if Path(lib.filepath).resolve().parent == scipy_libs]
    for lib in own or blas:  # a shared system BLAS: limit it, the kernels need it single-threaded
        lib.set_num_threads(1)
    _configured = True
