"""Suite-wide test settings.

BLAS threads: the suite's arrays are small, and on a 2-core machine NumPy's
multi-threaded OpenBLAS oversubscribes the cores (measured: tests/network took
24 s with default threads, 7 s with one).  The variable must be set before
NumPy is first imported, which is why it lives at the top of the root conftest.
"""

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
