-- Exact KL between checkpoints of one seed, complete partitions only; empty when no complete
-- partition has the file.

{% set lake_table = source('lake', 'trajectory_kl') %}

with source as (

    {{ complete_partition_rows('trajectory_kl', [
        ('seed', 'integer'), ('from_step', 'integer'), ('position', 'integer'), ('kl_later_earlier', 'double'), ('kl_earlier_later', 'double')]) }}

),

renamed as (

    select
        suite,
        size,
        step,
        cast(seed as integer) as seed,
        cast(from_step as integer) as from_step,
        cast(position as integer) as position,
        cast(kl_later_earlier as double) as kl_later_earlier,
        cast(kl_earlier_later as double) as kl_earlier_later

    from source

)

select * from renamed
