-- Pairwise KL of complete partitions only: rows of a partition without a manifest are
-- invisible downstream (macros/complete_partition_rows.sql).

{% set lake_table = source('lake', 'pair_kl') %}

with source as (

    {{ complete_partition_rows('pair_kl', [
        ('seed_a', 'integer'), ('seed_b', 'integer'), ('position', 'integer'), ('kl', 'float')]) }}

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

)

select * from renamed
