-- The suite's BLiMP minimal pairs (Warstadt et al. 2020, CC BY 4.0), one row per (suite,
-- pair_index). Empty when the lake has none (a lake written before BLiMP, or masked suites
-- only). BLiMP's files label one paradigm's field `syntax/semantics` and the other thirteen of
-- that field `syntax_semantics`: read as one field, syntax_semantics.

{% set pairs_source = source('lake', 'blimp_pairs') %}

with source as (

    {% if lake_files_exist('blimp_pairs/suite=*/blimp_pairs.parquet') %}
    select * from {{ pairs_source }}
    {% else %}
    -- a lake written before BLiMP: no rows, the contract's columns
    select
        cast(null as varchar) as suite,
        cast(null as integer) as pair_index,
        cast(null as varchar) as uid,
        cast(null as varchar) as field,
        cast(null as varchar) as linguistics_term,
        cast(null as varchar) as pair_id,
        cast(null as varchar) as sentence_good,
        cast(null as varchar) as sentence_bad,
        cast(null as integer) as n_tokens_good,
        cast(null as integer) as n_tokens_bad
    where false
    {% endif %}

),

renamed as (

    select
        suite,
        cast(pair_index as integer) as pair_index,
        cast(uid as varchar) as uid,
        replace(cast(field as varchar), '/', '_') as field,
        cast(linguistics_term as varchar) as linguistics_term,
        cast(pair_id as varchar) as pair_id,
        cast(sentence_good as varchar) as sentence_good,
        cast(sentence_bad as varchar) as sentence_bad,
        cast(n_tokens_good as integer) as n_tokens_good,
        cast(n_tokens_bad as integer) as n_tokens_bad

    from source

)

select * from renamed
