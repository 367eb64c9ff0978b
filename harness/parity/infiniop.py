"""Direct ctypes access to the built libinfiniop (through libinfini_qwen3.so, whose RPATH loads it), so tests
can run single InfiniCore operators on torch tensors and compare them with torch. Tests hand in CPU tensors;
on another device (INFINI_QWEN3_TEST_DEVICE=nvidia) each is copied to a CUDA tensor of the same strides, the
operator runs there, and the results are copied back."""

from __future__ import annotations

import ctypes

import torch

from harness.fixtures.device import TEST_DEVICE
from infini_qwen3 import _native

TORCH_DTYPES = {torch.float16: 12, torch.float32: 13, torch.bfloat16: 19, torch.int32: 5, torch.int64: 6,
                torch.uint32: 9, torch.int8: 3, torch.uint8: 7}
WEIGHT_INT8, WEIGHT_F8_E4M3 = 0, 1  # infiniopWeightFormat_t (patch 0024)
ROPE_GPT_J, ROPE_GPT_NEOX = 0, 1


class InfiniopError(RuntimeError):
    pass


class Infiniop:
    """One handle on the test device and the operators the Qwen3 model depends on."""

    def __init__(self, device: str = TEST_DEVICE):
        self.lib = _native.load()
        self.device = device
        self._check(self.lib.infinirtSetDevice(_native.DEVICES[device], 0), "infinirtSetDevice")
        self.handle = ctypes.c_void_p()
        self._check(self.lib.infiniopCreateHandle(ctypes.byref(self.handle)), "infiniopCreateHandle")

    @staticmethod
    def _check(status: int, what: str) -> None:
        if status != 0:
            raise InfiniopError(f"{what} returned status {status}")

    def _desc(self, t: torch.Tensor) -> ctypes.c_void_p:
        desc = ctypes.c_void_p()
        shape = (ctypes.c_size_t * t.dim())(*t.shape)
        strides = (ctypes.c_ssize_t * t.dim())(*t.stride())
        self._check(self.lib.infiniopCreateTensorDescriptor(ctypes.byref(desc), ctypes.c_size_t(t.dim()), shape,
                                                            strides, TORCH_DTYPES[t.dtype]),
                    "infiniopCreateTensorDescriptor")
        return desc

    def _run(self, op: str, tensors: list[torch.Tensor], create_extra: tuple, run_args: tuple,
             workspace: bool = True, outputs: int = 1, destroy: str | None = None,
             workspace_of: str | None = None) -> None:
        """Creates the op's descriptor, runs it, destroys it. `destroy`/`workspace_of` name the op whose
        functions serve this one (batched sampling shares random_sample's)."""
        lib = self.lib
        host_tensors, tensors = tensors, [self._to_device(t) for t in tensors]
        descs = [self._desc(t) for t in tensors]
        op_desc = ctypes.c_void_p()
        self._check(getattr(lib, f"infiniopCreate{op}Descriptor")(self.handle, ctypes.byref(op_desc), *descs,
                                                                  *create_extra), f"create {op}")
        ptrs = [ctypes.c_void_p(t.data_ptr()) for t in tensors]
        try:
            if workspace:
                size = ctypes.c_size_t()
                self._check(getattr(lib, f"infiniopGet{workspace_of or op}WorkspaceSize")(op_desc, ctypes.byref(size)),
                            f"{op} workspace")
                ws = torch.empty(max(size.value, 1), dtype=torch.uint8, device=tensors[0].device)
                self._check(getattr(lib, f"infiniop{op}")(op_desc, ctypes.c_void_p(ws.data_ptr()),
                                                           ctypes.c_size_t(size.value), *ptrs, *run_args, None),
                            f"run {op}")
            else:
                self._check(getattr(lib, f"infiniop{op}")(op_desc, *ptrs, *run_args, None), f"run {op}")
            self._copy_back(host_tensors[:outputs], tensors[:outputs])
        finally:
            getattr(lib, f"infiniopDestroy{destroy or op}Descriptor")(op_desc)
            for d in descs:
                lib.infiniopDestroyTensorDescriptor(d)

    def _to_device(self, t: torch.Tensor) -> torch.Tensor:
        if self.device == "cpu":
            return t
        on_device = torch.empty_strided(t.shape, t.stride(), dtype=t.dtype, device="cuda")
        on_device.copy_(t)
        return on_device

    def _copy_back(self, host_tensors: list[torch.Tensor], tensors: list[torch.Tensor]) -> None:
        """The operator wrote these (its leading tensors); inputs may share their storage (in-place runs)."""
        if self.device == "cpu":
            return
        torch.cuda.synchronize()
        for host, on_device in zip(host_tensors, tensors):
            host.copy_(on_device.cpu())

    def workspace_size(self, op: str, tensors: list[torch.Tensor]) -> int:
        """The workspace an operator's descriptor for these tensors asks for."""
        descs = [self._desc(self._to_device(t)) for t in tensors]
        op_desc = ctypes.c_void_p()
        self._check(getattr(self.lib, f"infiniopCreate{op}Descriptor")(self.handle, ctypes.byref(op_desc), *descs),
                    f"create {op}")
        try:
            size = ctypes.c_size_t()
            self._check(getattr(self.lib, f"infiniopGet{op}WorkspaceSize")(op_desc, ctypes.byref(size)),
                        f"{op} workspace")
            return size.value
        finally:
            getattr(self.lib, f"infiniopDestroy{op}Descriptor")(op_desc)
            for d in descs:
                self.lib.infiniopDestroyTensorDescriptor(d)

    def prepared_gemm(self, c, a, b) -> "PreparedGemm":
        """A GEMM descriptor and workspace for these CPU tensors, kept for repeated runs (benchmarks time only
        the operator); close() destroys them."""
        return PreparedGemm(self, c, a, b)

    def gemm(self, c, a, b, alpha=1.0, beta=0.0):
        # infiniopGemm(desc, ws, ws_size, c, a, b, alpha, beta, stream)
        self._run("Gemm", [c, a, b], (), (ctypes.c_float(alpha), ctypes.c_float(beta)))

    def rms_norm(self, y, x, w, eps):
        self._run("RMSNorm", [y, x, w], (ctypes.c_float(eps),), ())

    def rope(self, y, x, pos, sin, cos, algo):
        self._run("RoPE", [y, x, pos, sin, cos], (ctypes.c_int(algo),), ())

    def causal_softmax(self, y, x):
        self._run("CausalSoftmax", [y, x], (), ())

    def swiglu(self, c, a, b):
        self._run("SwiGLU", [c, a, b], (), ())

    def add(self, c, a, b):
        self._run("Add", [c, a, b], (), ())

    def rearrange(self, dst, src):
        self._run("Rearrange", [dst, src], (), (), workspace=False)

    def random_sample(self, probs, random_val, topp, topk, temperature) -> int:
        result = torch.zeros((), dtype=torch.int64)
        self._run("RandomSample", [result, probs], (),
                  (ctypes.c_float(random_val), ctypes.c_float(topp), ctypes.c_int(topk), ctypes.c_float(temperature)))
        return int(result.item())

    # Paged KV cache (patch 0009): caches [blocks, kv_heads, block_size, head_dim], I64 tables and lengths.
    def paged_caching(self, k_cache, v_cache, k, v, slot_mapping):
        self._run("PagedCaching", [k_cache, v_cache, k, v, slot_mapping], (), (), outputs=2)

    def paged_attention(self, out, q, k_cache, v_cache, block_tables, seq_lens, scale):
        self._run("PagedAttention", [out, q, k_cache, v_cache, block_tables, seq_lens],
                  (None, ctypes.c_float(scale)), (None,))

    def paged_attention_prefill(self, out, q, k_cache, v_cache, block_tables, seq_lens, new_lens, scale):
        self._run("PagedAttentionPrefill", [out, q, k_cache, v_cache, block_tables, seq_lens, new_lens],
                  (None, ctypes.c_float(scale)), (None,))

    def embedding(self, out, ids, weight):  # patch 0010
        self._run("Embedding", [out, ids, weight], (), (), workspace=False)

    def random_sample_batch(self, logits, random_vals, top_ps, top_ks, temperatures) -> list[int]:  # patch 0011
        """Parameters as device arrays (tensors), as the model passes them."""
        batch = logits.shape[0]
        result = torch.zeros(batch, dtype=torch.int64)
        params = [torch.tensor(random_vals, dtype=torch.float32), torch.tensor(top_ps, dtype=torch.float32),
                  torch.tensor(top_ks, dtype=torch.int32), torch.tensor(temperatures, dtype=torch.float32)]
        on_device = [self._to_device(p) for p in params]
        self._run("RandomSampleBatch", [result, logits], (),
                  (*[ctypes.c_void_p(p.data_ptr()) for p in on_device], ctypes.c_int(batch)),
                  destroy="RandomSample", workspace_of="RandomSample")
        return result.tolist()

    def weight_only_gemm(self, c, a, b, scales, weight_format, block_n, block_k, alpha=1.0, beta=0.0):  # patch 0024
        self._run("WeightOnlyGemm", [c, a, b, scales],
                  (ctypes.c_int(weight_format), ctypes.c_size_t(block_n), ctypes.c_size_t(block_k)),
                  (ctypes.c_float(alpha), ctypes.c_float(beta)))

    def silu_and_mul(self, out, fused):  # patch 0013
        self._run("SiluAndMul", [out, fused], (), ())


class PreparedGemm:
    """c = a . b with one descriptor and workspace, run as often as called (see Infiniop.prepared_gemm)."""

    def __init__(self, ops: Infiniop, c: torch.Tensor, a: torch.Tensor, b: torch.Tensor):
        self.ops, lib = ops, ops.lib
        self.descs = [ops._desc(t) for t in (c, a, b)]
        self.desc = ctypes.c_void_p()
        ops._check(lib.infiniopCreateGemmDescriptor(ops.handle, ctypes.byref(self.desc), *self.descs), "create Gemm")
        size = ctypes.c_size_t()
        ops._check(lib.infiniopGetGemmWorkspaceSize(self.desc, ctypes.byref(size)), "Gemm workspace")
        self.workspace = torch.empty(max(size.value, 1), dtype=torch.uint8)
        self.args = (ctypes.c_void_p(self.workspace.data_ptr()), ctypes.c_size_t(size.value),
                     *[ctypes.c_void_p(t.data_ptr()) for t in (c, a, b)], ctypes.c_float(1.0), ctypes.c_float(0.0),
                     None)

    def __call__(self) -> None:
        self.ops._check(self.ops.lib.infiniopGemm(self.desc, *self.args), "run Gemm")

    def close(self) -> None:
        self.ops.lib.infiniopDestroyGemmDescriptor(self.desc)
        for d in self.descs:
            self.ops.lib.infiniopDestroyTensorDescriptor(d)
