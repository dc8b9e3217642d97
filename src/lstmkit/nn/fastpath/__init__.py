"""The custom core's fast path: the fused layer with its hand-written backward (`fused`), the
C time loop (`native`, `_kernels.c`, compiled by `kernel_build`), the registered operators
(`ops`), the differentiable composite layer (`composite`) and the Triton kernels for CUDA
(`triton_lstm`, `_triton_kernels`, `triton_ops`). Its switches are `lstmkit.nn.settings`.

Part of the ``lstmkit.nn`` layer: plain PyTorch, no Lightning. `lstmkit.nn.CustomLSTM` is its
public face; these modules are internals, imported on their own.
"""
