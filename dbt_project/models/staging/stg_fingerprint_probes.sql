-- The suite's fingerprint probe set (McEntire 2026): the fixed texts a checkpoint's
-- fingerprint pools its final hidden states over. Empty when the lake has none yet.

{% set probes_source = source('lake', 'fingerprint_probes') %}

with source as (

    {% if lake_files_exist('fingerprint_probes/suite=*/fingerprint_probes.parquet') %}
    select * from {{ probes_source }}
    {% else %}
    -- a lake written before fingerprints: no rows, the contract's columns
    select
        cast(null as varchar) as suite,
        cast(null as integer) as probe_id,
        cast(null as varchar) as kind,
        cast(null as varchar) as text,
        cast(null as integer) as n_tokens
    where false
    {% endif %}

),

renamed as (

    select
        suite,
        cast(probe_id as integer) as probe_id,
        cast(kind as varchar) as kind,
        cast(text as varchar) as text,
        cast(n_tokens as integer) as n_tokens

    from source

)

select * from renamed
