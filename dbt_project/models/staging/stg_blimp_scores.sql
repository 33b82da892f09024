-- BLiMP sentence scores of complete partitions only: per seed and minimal pair, the natural-log
-- probability of the good and of the bad sentence (macros/complete_partition_rows.sql). Causal
-- suites only; a lake written before BLiMP, or a partition of a masked suite, has none: an
-- empty relation with the contract's columns when no complete partition has the file.

{% set lake_table = source('lake', 'blimp_scores') %}

with source as (

    {{ complete_partition_rows('blimp_scores', [
        ('seed', 'integer'), ('pair_index', 'integer'), ('logprob_good', 'double'), ('logprob_bad', 'double')]) }}

),

renamed as (

    select
        suite,
        size,
        step,
        cast(seed as integer) as seed,
        cast(pair_index as integer) as pair_index,
        cast(logprob_good as double) as logprob_good,
        cast(logprob_bad as double) as logprob_bad

    from source

)

select * from renamed
