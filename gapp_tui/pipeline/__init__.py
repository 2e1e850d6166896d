"""Pipeline runs: a partition Plan executed for real, one torch.distributed (gloo) process per stage.

``run_plan(plan, items=..., warmup=...) -> PipelineResult`` is the entry point;
``gapp pipeline run PLAN`` is its command line.
"""

from .config import PlanView, StageConfig, plan_dict, read_plan
from .run import PipelineError, PipelineResult, check_cuts, free_port, run_plan

__all__ = [
    "PipelineError",
    "PipelineResult",
    "PlanView",
    "StageConfig",
    "check_cuts",
    "free_port",
    "plan_dict",
    "read_plan",
    "run_plan",
]
