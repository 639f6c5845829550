"""Workloads: what trains (torch learners, data, optimizers) and what a step costs (timing).

See docs/workloads.md for formulas, defaults and measured figures.
"""

from workloads.config import WorkloadConfig
from workloads.devices import DEVICES, DeviceProfile, FixedRateProfile, get_device
from workloads.learner import Learner
from workloads.llama import Llama, LlamaConfig, StagedModel
from workloads.markov import MarkovLanguage, random_sparse_markov
from workloads.pipeline import PipelineLearner
from workloads.replicas import ReplicaGroup
from workloads.timing import TimingModel, llama_timing, preset_names, preset_timing
from workloads.timing_only import TimingOnlyLearner
from workloads.workload import Workload, build_workload

__all__ = [
    "DEVICES",
    "DeviceProfile",
    "FixedRateProfile",
    "Learner",
    "Llama",
    "LlamaConfig",
    "MarkovLanguage",
    "PipelineLearner",
    "ReplicaGroup",
    "StagedModel",
    "TimingModel",
    "TimingOnlyLearner",
    "Workload",
    "WorkloadConfig",
    "build_workload",
    "get_device",
    "llama_timing",
    "preset_names",
    "preset_timing",
    "random_sparse_markov",
]
