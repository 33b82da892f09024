-- ICL surprisals of complete partitions only: rows of a partition without a manifest are
-- invisible downstream.

{% set icl_scores_source = source('lake', 'icl_scores') %}

with source as (

    {% if lake_files_exist('checkpoints/suite=*/size=*/step=*/icl_scores.parquet') %}
    select * from {{ icl_scores_source }}
    {% else %}
    -- a lake written before ICL was extracted: no rows, the contract's columns
    select
        cast(null as varchar) as suite,
        cast(null as varchar) as size,
        cast(null as bigint) as step,
        cast(null as integer) as seed,
        cast(null as integer) as sequence_id,
        cast(null as integer) as short_context,
        cast(null as integer) as long_context,
        cast(null as integer) as target_position,
        cast(null as float) as surprisal_short,
        cast(null as float) as surprisal_long
    where false
    {% endif %}

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
    where {{ complete_partitions_only('source') }}

)

select * from renamed
