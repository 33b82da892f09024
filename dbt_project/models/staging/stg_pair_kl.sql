-- Pairwise KL of complete partitions only: rows of a partition without a manifest are
-- invisible downstream.

with source as (

    select * from {{ source('lake', 'pair_kl') }}

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
    where {{ complete_partitions_only('source') }}

)

select * from renamed
