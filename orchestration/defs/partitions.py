"""One dynamic partition per checkpoint: every seed of a (suite, size, step).

Keys look like `mini|m|step64` (see extract.suites.partition_key); the sensor adds them as
checkpoint folders appear.
"""

import dagster as dg

checkpoint_partitions = dg.DynamicPartitionsDefinition(name="checkpoints")
