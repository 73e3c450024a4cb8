"""steerkit's Triton kernels (installed as ``steerkit.kernels``).

On a machine without a GPU they run under ``TRITON_INTERPRET=1``, which must be set before this
package is imported.
"""
