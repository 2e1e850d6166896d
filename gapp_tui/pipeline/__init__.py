"""Pipeline runs: a partition Plan executed for real, one torch.distributed (gloo) process per stage.

``run_plan(plan, items=..., warmup=...) -> PipelineResult`` is the entry point
(``run_plan(from_export=DIR)`` runs the stages ``gapp export`` wrote);
``gapp pipeline run PLAN`` (``--from-export DIR``) is its command line.
"""

from .config import PlanView, StageConfig, plan_dict, read_plan
from .exported import ExportedRun, read_export
from .result import PipelineResult
from .run import PipelineError, check_cuts, free_port, master_address, run_plan

__all__ = [
    "ExportedRun",
    "PipelineError",
    "PipelineResult",
    "PlanView",
    "StageConfig",
    "check_cuts",
    "free_port",
    "master_address",
    "plan_dict",
    "read_export",
    "read_plan",
    "run_plan",
]
