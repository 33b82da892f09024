-- ICL surprisals of complete partitions only: rows of a partition without a manifest are
-- invisible downstream (macros/complete_partition_rows.sql). A lake written before ICL was
-- extracted reads as no rows, with the contract's columns.

{% set lake_table = source('lake', 'icl_scores') %}

with source as (

    {{ complete_partition_rows('icl_scores', [
        ('seed', 'integer'), ('sequence_id', 'integer'), ('short_context', 'integer'),
        ('long_context', 'integer'), ('target_position', 'integer'), ('surprisal_short', 'float'),
        ('surprisal_long', 'float')]) }}

),

renamed as (

    select
        suite,
        size,
        step,
        cast(seed as integer) as seed,
        cast(sequence_id as integer) as sequence_id,
        cast(short_context as integer) as short_context,
        cast(long_context as integer) as long_context,
        cast(target_position as integer) as target_position,
        cast(surprisal_short as double) as surprisal_short,
        cast(surprisal_long as double) as surprisal_long

    from source

)

select * from renamed
