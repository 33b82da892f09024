-- Pairwise KL of complete partitions only: rows of a partition without a manifest are
-- invisible downstream.

with source as (

    select * from {{ source('lake', 'pair_kl') }}

),

complete_partitions as (

    select suite, size, step from {{ ref('stg_checkpoints') }}

),

renamed as (

    select
        suite,
        size,
        step,
        cast(seed_a as integer) as seed_a,
        cast(seed_b as integer) as seed_b,
        cast(position as integer) as position,
        cast(kl as double) as kl

    from source
    where exists (
        select 1
        from complete_partitions
        where complete_partitions.suite = source.suite
            and complete_partitions.size = source.size
            and complete_partitions.step = source.step
    )

)

select * from renamed
