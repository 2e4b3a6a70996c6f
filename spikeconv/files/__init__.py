"""Every on-disk format spikeconv reads or writes, one module per format.

``detect`` tells a model file's format and parses it once; ``ann_loaders`` holds one loader per
format in a registry (:func:`register_model_format`) and finishes each with the shared checks of
``ann_finish``; ``ann_record`` rebuilds an ANN from the record an SNN file embeds; ``snn_file``
saves and loads SNN files. A new format is one module plus one registration.
"""

from spikeconv.files.ann_loaders import MODEL_LOADERS, load_ann, register_model_format
from spikeconv.files.ann_record import canonical_graph, rebuild_ann
from spikeconv.files.ann_types import LoadedAnn, ModelSpec
from spikeconv.files.detect import ModelFile, ModelFormat, read_model_file
from spikeconv.files.info import describe_file, format_description
from spikeconv.files.snn_file import LoadedSnn, build_snn, load_snn, model_from_arch, save_snn

__all__ = [
    "MODEL_LOADERS",
    "LoadedAnn",
    "LoadedSnn",
    "ModelFile",
    "ModelFormat",
    "ModelSpec",
    "build_snn",
    "canonical_graph",
    "describe_file",
    "format_description",
    "load_ann",
    "load_snn",
    "model_from_arch",
    "read_model_file",
    "rebuild_ann",
    "register_model_format",
    "save_snn",
]
