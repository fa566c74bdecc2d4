"""Where a run's steps execute, chosen by configuration: in one process, in subprocesses, or as Kubernetes jobs."""

import os

from dagster import ExecutorDefinition, in_process_executor, multiprocess_executor

from feature_assets.language.errors import DefinitionError

EXECUTOR_VARIABLE = "FEATURE_STORE_EXECUTOR"
EXECUTORS = ("in_process", "multiprocess", "k8s")


def executor_from_env() -> ExecutorDefinition | None:
    """Return the executor named by FEATURE_STORE_EXECUTOR (unset: Dagster's default, multiprocess)."""
    choice = os.environ.get(EXECUTOR_VARIABLE)
    if not choice:
        return None
    if choice == "in_process":
        return in_process_executor
    if choice == "multiprocess":
        return multiprocess_executor
    if choice == "k8s":
        try:
            from dagster_k8s import k8s_job_executor
        except ImportError:
            raise DefinitionError(
                f"{EXECUTOR_VARIABLE}=k8s needs the dagster-k8s package: pip install dagster-k8s==0.29.27"
            ) from None
        return k8s_job_executor
    raise DefinitionError(f"{EXECUTOR_VARIABLE}={choice!r} is not an executor; use one of {', '.join(EXECUTORS)}")
