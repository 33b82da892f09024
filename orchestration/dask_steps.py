"""Steps of Dagster runs executed on a Dask cluster whose workers hold one device each.

This is dagster-dask's executor (`dagster_dask.DaskExecutor`: each step a Dask task running
`query_on_dask_worker`, a step's `dagster-dask/resource_requirements` tag passed to Dask), with
two changes, each for a failure of dagster-dask 0.29 with Dask 2026:

- The task key. dagster-dask names a step's task `<job>.<step>`, and Dask treats two submissions
  under one key as one computation, so two runs of the same job at once on one scheduler (a
  backfill's ranges, which is the point here) would share the first run's result: the second
  run's checkpoints would never be extracted. Here the key carries the run's id.
- The arguments. Dask walks the tuples it is given in search of futures, and the DagsterRun
  dagster-dask passes is a NamedTuple holding a record that refuses iteration ("Iteration is not
  allowed on `@record` RunOpConcurrency"): every run failed before its first step. Here they
  travel inside an object Dask does not open (`StepCall`).

What Dask gives that we rely on: a task placed only on a worker with a free `GPU` slot
(`--resources GPU=1` on each worker), and a task whose worker dies (SIGKILL, a node lost) run
again on another worker (up to `distributed.scheduler.allowed-failures`, 3 by default).
"""

from __future__ import annotations

import dagster as dg
import dask.distributed
from dagster._core.errors import raise_execution_interrupts
from dagster._utils import iterate_with_context
from dagster_dask.executor import DaskExecutor, get_dask_resource_requirements, query_on_dask_worker

# The step tag dagster-dask reads (dagster_dask.executor.DASK_RESOURCE_REQUIREMENTS_KEY): an
# extraction step takes one worker's device, so each worker runs one extraction at a time.
GPU_SLOT_TAG = {"dagster-dask/resource_requirements": '{"GPU": 1}'}


class StepCall:
    """One step's arguments to dagster-dask's `query_on_dask_worker`, opaque to Dask."""

    def __init__(self, *arguments):
        self.arguments = arguments

    def __call__(self, upstream: list) -> list:
        return query_on_dask_worker(upstream, *self.arguments)


class RunScopedDaskExecutor(DaskExecutor):
    """dagster-dask's executor on an existing scheduler, with a task key per (run, step)."""

    def __init__(self, address: str):
        super().__init__("existing", {"address": address})
        self.address = address

    def execute(self, plan_context, execution_plan):
        run = plan_context.dagster_run
        instance_ref = plan_context.instance.get_ref()
        with dask.distributed.Client(self.address) as client:
            futures = {}
            for level in execution_plan.get_steps_to_execute_by_level():
                for step in level:
                    # A step's upstream futures, so Dask runs it after them (as dagster-dask does).
                    upstream = [futures[key] for step_input in step.step_inputs for key in step_input.dependency_keys]
                    call = StepCall(
                        plan_context.reconstructable_job,
                        run,
                        plan_context.run_config,
                        [step.key],
                        instance_ref,
                        execution_plan.known_state,
                    )
                    futures[step.key] = client.submit(
                        call,
                        upstream,
                        key=f"{run.run_id}.{step.key}",
                        resources=get_dask_resource_requirements(step.tags),
                    )
            completed = dask.distributed.as_completed(list(futures.values()), with_results=True)
            for _, events in iterate_with_context(raise_execution_interrupts, completed):
                yield from events


@dg.executor(
    name="dask_workers",
    requirements=dg.multiple_process_executor_requirements(),
    config_schema={"address": dg.Field(str, description="The Dask scheduler's address, tcp://host:8786.")},
)
def dask_workers_executor(init_context) -> RunScopedDaskExecutor:
    """Every step of a run as a task on the Dask cluster at `address` (see this module)."""
    return RunScopedDaskExecutor(init_context.executor_config["address"])
