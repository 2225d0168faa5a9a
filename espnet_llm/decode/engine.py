"""Inference engines for the LLM: the forward every decoder runs, on Hugging Face PyTorch or on an exported graph.

Every decoder (batched and speculative greedy search, the LLM scorer of ESPnet's beam search, the fusion scorers)
calls the LLM as a Hugging Face causal LM::

    out = llm(inputs_embeds=... | input_ids=..., attention_mask=..., position_ids=..., past_key_values=cache,
              use_cache=True, logits_to_keep=k)
    out.logits            # (Batch, Kept, Vocab)
    out.past_key_values   # a transformers DynamicCache: per layer (keys, values), (Batch, KVHeads, Past + Time, HeadDim)

and reads ``get_input_embeddings()``, ``get_output_embeddings().weight.shape[0]``, ``config`` and
``parameters()``. An engine is an ``nn.Module`` with that interface, so a decoder does not know which one runs:

- ``hf``: the Hugging Face model itself, no engine around it (the default and the reference).
- ``openvino``: the LLM's forward converted by OpenVINO (``openvino.convert_model`` traces it with its KV cache
  as explicit inputs and outputs), compiled for the CPU. ``precision``: ``f32`` (exact up to float rounding),
  ``bf16`` (OpenVINO's ``INFERENCE_PRECISION_HINT``: bf16 matrix products where the CPU has them) or ``int8``
  (weights compressed to int8 by NNCF's ``compress_weights``, activations f32).
- ``onnxruntime``: the same forward exported by ``torch.onnx.export`` and run by ONNX Runtime's CPU provider,
  ``f32`` only.

The exported graph's inputs are ``inputs_embeds`` (Batch, Time, Dim), ``attention_mask`` (Batch, Past + Time),
``position_ids`` (Batch, Time), ``logits_to_keep`` (Kept,) positions of ``Time`` whose logits are returned, and
``past_<2l>`` / ``past_<2l+1>`` the keys and values of layer l (Batch, KVHeads, Past, HeadDim; Past may be 0);
its outputs are ``logits`` and ``present_*`` (Past + Time), which replace the layers of the ``DynamicCache``
given as ``past_key_values`` (updated in place, as Hugging Face does: speculative search crops it afterwards). Token ids are embedded in PyTorch (the embedding is a
lookup), so the graph is the same for audio prefixes and for text. The graph is traced with eager attention
(the reference computes the same function with SDPA; the parity test bounds the difference).

A LoRA-adapted LLM (peft) is merged into a copy of its base before export. ``export_engine`` writes the graph to
a directory with ``engine.json`` (engine, precision, the source's identity); ``load_engine`` reuses a directory
whose identity matches and exports again otherwise, under a lock, so that parallel decoding jobs export once.
Sliding-window and other non-``DynamicLayer`` caches are not supported by the exported engines (an error says so).
"""
from __future__ import annotations

import abc
import contextlib
import copy
import fcntl
import hashlib
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer
from transformers.modeling_outputs import CausalLMOutputWithPast

logger = logging.getLogger(__name__)

ENGINES = ("hf", "openvino", "onnxruntime")
PRECISIONS = {"hf": ("f32",), "openvino": ("f32", "bf16", "int8"), "onnxruntime": ("f32",)}
ENGINE_FILE = "engine.json"


def cache_from_layers(layers: Sequence[Tuple[torch.Tensor, torch.Tensor]]) -> DynamicCache:
    """A DynamicCache holding `layers` (per layer (keys, values)) as they are: no copy, and no concatenation with
    an empty tensor (which ``DynamicCache(ddp_cache_data=...)`` does, and which a traced graph cannot hold)."""
    cache = DynamicCache()
    for keys, values in layers:
        layer = DynamicLayer()
        layer.dtype, layer.device, layer.is_initialized = keys.dtype, keys.device, True
        layer.keys, layer.values = keys, values
        cache.layers.append(layer)
    return cache


def merged_llm(llm: torch.nn.Module) -> torch.nn.Module:
    """The plain causal LM of `llm`: a peft model's LoRA merged into a copy of its base; others as they are."""
    if hasattr(llm, "merge_and_unload"):
        return copy.deepcopy(llm).merge_and_unload()
    return llm


class LLMEngine(torch.nn.Module, abc.ABC):
    """A causal LM's forward behind the Hugging Face call interface (see the module doc).

    Args:
        llm: the Hugging Face causal LM (or peft model) it stands for; engines keep its embedding, output head and
            config, and run the rest their own way.
    """

    name = "abstract"

    def __init__(self, llm: torch.nn.Module):
        super().__init__()
        self.config = llm.config
        self.embed_tokens = llm.get_input_embeddings()
        self.lm_head = llm.get_output_embeddings()

    def get_input_embeddings(self) -> torch.nn.Module:
        return self.embed_tokens

    def get_output_embeddings(self) -> torch.nn.Module:
        return self.lm_head

    @abc.abstractmethod
    def forward(self, input_ids=None, inputs_embeds=None, attention_mask=None, position_ids=None,
                past_key_values=None, use_cache=True, logits_to_keep=0, **kwargs) -> CausalLMOutputWithPast:
        """The Hugging Face causal-LM forward (see the module doc)."""


class _Flat(torch.nn.Module):
    """The LLM's forward with the KV cache as flat tensors (what is exported)."""

    def __init__(self, llm: torch.nn.Module, n_layers: int):
        super().__init__()
        self.llm, self.n_layers = llm, n_layers

    def forward(self, inputs_embeds, attention_mask, position_ids, logits_to_keep, *past):
        cache = cache_from_layers([(past[2 * i], past[2 * i + 1]) for i in range(self.n_layers)])
        out = self.llm(inputs_embeds=inputs_embeds, attention_mask=attention_mask, position_ids=position_ids,
                       past_key_values=cache, use_cache=True, logits_to_keep=logits_to_keep)
        flat = []
        for layer in out.past_key_values.layers:
            flat += [layer.keys, layer.values]
        return (out.logits, *flat)


def _cache_geometry(llm: torch.nn.Module) -> Tuple[int, int, int]:
    """(layers, KV heads, head dim) of `llm`'s cache, read off one forward of one position."""
    embed = llm.get_input_embeddings()
    with torch.no_grad():
        out = llm(inputs_embeds=embed.weight[:1][None], past_key_values=DynamicCache(), use_cache=True, logits_to_keep=1)
    layers = out.past_key_values.layers
    kinds = {type(layer).__name__ for layer in layers}
    if kinds != {"DynamicLayer"}:
        raise ValueError(f"exported LLM engines support full-attention caches (DynamicLayer), this LLM has {sorted(kinds)}")
    return len(layers), layers[0].keys.shape[1], layers[0].keys.shape[3]


def _example(llm: torch.nn.Module, geometry) -> Tuple[torch.Tensor, ...]:
    n_layers, heads, head_dim = geometry
    dim = llm.get_input_embeddings().embedding_dim
    batch, past, time_ = 2, 3, 4
    return (torch.randn(batch, time_, dim), torch.ones(batch, past + time_, dtype=torch.long),
            torch.arange(past, past + time_)[None].repeat(batch, 1), torch.arange(time_),
            *[torch.randn(batch, heads, past, head_dim) for _ in range(2 * n_layers)])


def _names(n_layers: int) -> Tuple[List[str], List[str]]:
    inputs = ["inputs_embeds", "attention_mask", "position_ids", "logits_to_keep"]
    inputs += [f"past_{i}" for i in range(2 * n_layers)]
    return inputs, ["logits"] + [f"present_{i}" for i in range(2 * n_layers)]


class ExportedEngine(LLMEngine):
    """An engine that runs an exported graph of the forward (see the module doc); subclasses implement
    ``export`` (write the graph into a directory), ``load`` (compile it) and ``run`` (numpy in, numpy out)."""

    precisions: Tuple[str, ...] = ("f32",)

    def __init__(self, llm: torch.nn.Module, directory: Union[str, Path], precision: str = "f32"):
        super().__init__(llm)
        if precision not in self.precisions:
            raise ValueError(f"engine {self.name}: precision must be one of {self.precisions}, got {precision!r}")
        self.precision = precision
        self.directory = Path(directory)
        meta = json.loads((self.directory / ENGINE_FILE).read_text(encoding="utf-8"))
        self.n_layers, self.kv_heads, self.head_dim = meta["n_layers"], meta["kv_heads"], meta["head_dim"]
        self.input_names, self.output_names = _names(self.n_layers)
        self.load()

    @classmethod
    @abc.abstractmethod
    def export(cls, llm: torch.nn.Module, directory: Path, precision: str, geometry) -> None:
        """Write the graph of `llm` (a plain HF causal LM, eval mode) into `directory`."""

    @abc.abstractmethod
    def load(self) -> None:
        """Compile the graph in ``self.directory``."""

    @abc.abstractmethod
    def run(self, feeds: List) -> List:
        """One forward: numpy arrays in ``self.input_names`` order -> numpy arrays in ``self.output_names`` order."""

    def forward(self, input_ids=None, inputs_embeds=None, attention_mask=None, position_ids=None,
                past_key_values=None, use_cache=True, logits_to_keep=0, **kwargs) -> CausalLMOutputWithPast:
        if kwargs:
            raise TypeError(f"engine {self.name}: unsupported arguments {sorted(kwargs)}")
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)
        batch, time_ = inputs_embeds.shape[:2]
        layers = [] if past_key_values is None else [
            (layer.keys, layer.values) for layer in past_key_values.layers if layer.is_initialized]
        if layers and layers[0][0].dim() == 4:
            past = layers[0][0].shape[2]
        else:
            past = 0
            empty = inputs_embeds.new_zeros(batch, self.kv_heads, 0, self.head_dim)
            layers = [(empty, empty)] * self.n_layers
        if attention_mask is None:
            attention_mask = torch.ones(batch, past + time_, dtype=torch.long)
        if position_ids is None:
            position_ids = torch.arange(past, past + time_)[None].repeat(batch, 1)
        if isinstance(logits_to_keep, torch.Tensor):
            keep = logits_to_keep.to(torch.long)
        else:
            keep = torch.arange(time_ - logits_to_keep if 0 < logits_to_keep <= time_ else 0, time_)
        flat = [inputs_embeds.detach().float(), attention_mask.to(torch.long), position_ids.to(torch.long), keep]
        for keys, values in layers:
            flat += [keys, values]
        outputs = self.run([t.detach().contiguous().numpy() for t in flat])
        outputs = [torch.from_numpy(o) for o in outputs]
        cache = cache_from_layers([(outputs[1 + 2 * i], outputs[2 + 2 * i]) for i in range(self.n_layers)])
        if isinstance(past_key_values, DynamicCache):  # as Hugging Face does: the given cache is updated in place
            past_key_values.layers[:] = cache.layers
            cache = past_key_values
        return CausalLMOutputWithPast(logits=outputs[0], past_key_values=cache)


class OpenVINOEngine(ExportedEngine):
    """OpenVINO on the CPU: ``f32``, ``bf16`` (inference precision hint) or ``int8`` (NNCF int8 weights)."""

    name = "openvino"
    precisions = PRECISIONS["openvino"]

    @classmethod
    def export(cls, llm, directory, precision, geometry):
        import openvino as ov

        example = _example(llm, geometry)
        names, _ = _names(geometry[0])
        with torch.no_grad():
            model = ov.convert_model(_Flat(llm, geometry[0]).eval(), example_input=example)
        for port, name in zip(model.inputs, names):
            port.get_tensor().set_names({name})
        if precision == "int8":
            import nncf

            model = nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT8_ASYM)
        ov.save_model(model, str(directory / "llm.xml"), compress_to_fp16=False)

    def load(self):
        import openvino as ov

        hint = "bf16" if self.precision == "bf16" else "f32"
        threads = torch.get_num_threads()
        config = {"INFERENCE_PRECISION_HINT": hint, "INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"}
        self.compiled = ov.Core().compile_model(str(self.directory / "llm.xml"), "CPU", config)
        self.request = self.compiled.create_infer_request()

    def run(self, feeds):
        self.request.infer(feeds, share_inputs=True)
        return [self.request.get_output_tensor(i).data.copy() for i in range(len(self.output_names))]


class ONNXRuntimeEngine(ExportedEngine):
    """ONNX Runtime's CPU execution provider on a ``torch.onnx.export`` graph, f32."""

    name = "onnxruntime"
    precisions = PRECISIONS["onnxruntime"]

    @classmethod
    def export(cls, llm, directory, precision, geometry):
        import warnings

        names, outputs = _names(geometry[0])
        dynamic = {"inputs_embeds": {0: "batch", 1: "time"}, "attention_mask": {0: "batch", 1: "total"},
                   "position_ids": {0: "batch", 1: "time"}, "logits_to_keep": {0: "kept"},
                   "logits": {0: "batch", 1: "kept"}}
        dynamic.update({name: {0: "batch", 2: "past"} for name in names[4:]})
        dynamic.update({name: {0: "batch", 2: "total"} for name in outputs[1:]})
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(_Flat(llm, geometry[0]).eval(), _example(llm, geometry), str(directory / "llm.onnx"),
                              input_names=names, output_names=outputs, dynamic_axes=dynamic, dynamo=False,
                              opset_version=17)

    def load(self):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(self.directory / "llm.onnx"), options, providers=["CPUExecutionProvider"])

    def run(self, feeds):
        return self.session.run(self.output_names, dict(zip(self.input_names, feeds)))


ENGINE_CLASSES: Dict[str, type] = {"openvino": OpenVINOEngine, "onnxruntime": ONNXRuntimeEngine}  # "hf": the model


def source_identity(llm: torch.nn.Module) -> str:
    """sha256 of the LLM's weights (names, shapes and values of its state dict, LoRA included): an exported graph
    belongs to exactly these weights."""
    digest = hashlib.sha256()
    for name, tensor in sorted(llm.state_dict().items()):
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(tensor.detach().to(torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()


def export_engine(llm: torch.nn.Module, directory: Union[str, Path], engine: str, precision: str = "f32",
                  identity: Optional[str] = None) -> Path:
    """Export `llm` (HF causal LM or peft model, merged first) for `engine` into `directory`, written whole: a
    temporary sibling renamed into place, with ``engine.json`` last. Returns the directory."""
    if engine not in ENGINE_CLASSES:
        raise ValueError(f"engine {engine!r}: nothing to export (exported engines: {sorted(ENGINE_CLASSES)})")
    cls = ENGINE_CLASSES[engine]
    if precision not in cls.precisions:
        raise ValueError(f"engine {engine}: precision must be one of {cls.precisions}, got {precision!r}")
    directory = Path(directory)
    start = time.time()
    plain = merged_llm(llm).eval()
    eager = getattr(plain.config, "_attn_implementation", None)
    geometry = _cache_geometry(plain)
    tmp = directory.with_name(f".{directory.name}.tmp.{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        plain.config._attn_implementation = "eager"  # traceable attention (see the module doc)
        cls.export(plain, tmp, precision, geometry)
    finally:  # an exporter restores the wrapper's training mode on the model: keep it in eval mode
        plain.config._attn_implementation = eager
        plain.eval()
    meta = dict(engine=engine, precision=precision, identity=identity or source_identity(llm),
                n_layers=geometry[0], kv_heads=geometry[1], head_dim=geometry[2], export_s=round(time.time() - start, 1))
    (tmp / ENGINE_FILE).write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    if directory.exists():
        shutil.rmtree(directory)
    os.replace(tmp, directory)
    logger.info("exported the LLM for %s (%s) into %s in %.1f s", engine, precision, directory, meta["export_s"])
    return directory


@contextlib.contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def default_engine_dir(model_file: Union[str, Path], engine: str, precision: str) -> Path:
    """Where a model file's exported LLM lives: ``export/<engine>_<precision>_<model file stem>`` beside it."""
    model_file = Path(model_file)
    return model_file.parent / "export" / f"{engine}_{precision}_{model_file.name.split('.pth')[0]}"


def load_engine(llm: torch.nn.Module, engine: str = "hf", precision: str = "f32",
                directory: Optional[Union[str, Path]] = None) -> torch.nn.Module:
    """`llm` behind `engine`. ``hf``: `llm` itself. Others: the graph in `directory` if it was exported from these
    weights with this precision, else exported there first (under ``<directory>.lock``, so parallel jobs export
    once); with no `directory`, into a temporary one."""
    if engine not in ENGINES:
        raise ValueError(f"unknown LLM engine {engine!r}; choose from {ENGINES}")
    if engine == "hf":
        if precision != "f32":
            raise ValueError(f"engine hf runs the model in its own precision: precision must be f32, got {precision!r}")
        return llm
    cls = ENGINE_CLASSES[engine]
    identity = source_identity(llm)
    if directory is None:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="espnet_llm_engine_") as tmp:
            export_engine(llm, Path(tmp) / "llm", engine, precision, identity)
            return cls(llm, Path(tmp) / "llm", precision)  # compiled into memory: the files may go
    directory = Path(directory)
    with _locked(directory.with_name(directory.name + ".lock")):
        meta = {}
        if (directory / ENGINE_FILE).is_file():
            meta = json.loads((directory / ENGINE_FILE).read_text(encoding="utf-8"))
        if (meta.get("engine"), meta.get("precision"), meta.get("identity")) != (engine, precision, identity):
            if meta:
                logger.warning("%s was exported from other weights or settings: exporting again", directory)
            export_engine(llm, directory, engine, precision, identity)
    return cls(llm, directory, precision)
