"""SensiMix for Hugging Face Transformers: 8-bit index and 1-bit XNOR mixed-precision BERT.

Importing this package registers the SensiMix config and models with transformers' Auto classes.
"""

from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification

from .callback import SensiMixCallback, SensiMixStage
from .configuration_sensimix import SENSIMIX_FORMAT_VERSION, SensiMixConfig
from .modeling_sensimix import SensiMixForSequenceClassification, SensiMixModel, SensiMixPreTrainedModel


__version__ = "0.1.0"

AutoConfig.register(SensiMixConfig.model_type, SensiMixConfig, exist_ok=True)
AutoModel.register(SensiMixConfig, SensiMixModel, exist_ok=True)
AutoModelForSequenceClassification.register(SensiMixConfig, SensiMixForSequenceClassification, exist_ok=True)

# save_pretrained then copies the code files and writes `auto_map`, for trust_remote_code loading.
SensiMixConfig.register_for_auto_class()
SensiMixModel.register_for_auto_class("AutoModel")
SensiMixForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")

__all__ = [
    "SENSIMIX_FORMAT_VERSION",
    "SensiMixCallback",
    "SensiMixConfig",
    "SensiMixForSequenceClassification",
    "SensiMixModel",
    "SensiMixPreTrainedModel",
    "SensiMixStage",
    "__version__",
]
