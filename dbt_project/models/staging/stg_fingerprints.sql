-- Activation fingerprints (McEntire 2026) of complete partitions only: rows of a partition
-- without a manifest are invisible downstream (macros/complete_partition_rows.sql). A lake
-- written before fingerprints were extracted reads as no rows, with the contract's columns.
-- The fingerprint is cast to double here, so every dot product downstream sums in double.

{% set lake_table = source('lake', 'fingerprints') %}

with source as (

    {{ complete_partition_rows('fingerprints', [
        ('seed', 'integer'), ('probe_id', 'integer'), ('n_tokens', 'integer'),
        ('fingerprint', 'float[]')]) }}

),

renamed as (

    select
        suite,
        size,
        step,
        cast(seed as integer) as seed,
        cast(probe_id as integer) as probe_id,
        cast(n_tokens as integer) as n_tokens,
        cast(fingerprint as double[]) as fingerprint

    from source

)

select * from renamed
