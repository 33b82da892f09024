-- The suite's log-likelihood text set (Kishino et al. 2026): the texts every model scores whole, with
-- their UTF-8 length, which turns a KL per text into a KL per byte. Empty when the lake has
-- none yet.

{% set texts_source = source('lake', 'loglik_texts') %}

with source as (

    {% if lake_files_exist('loglik_texts/suite=*/loglik_texts.parquet') %}
    select * from {{ texts_source }}
    {% else %}
    -- a lake written before log-likelihood vectors: no rows, the contract's columns
    select
        cast(null as varchar) as suite,
        cast(null as integer) as text_id,
        cast(null as varchar) as doc_id,
        cast(null as varchar) as text,
        cast(null as integer) as n_bytes,
        cast(null as integer) as n_tokens
    where false
    {% endif %}

),

renamed as (

    select
        suite,
        cast(text_id as integer) as text_id,
        cast(doc_id as varchar) as doc_id,
        cast(text as varchar) as text,
        cast(n_bytes as integer) as n_bytes,
        cast(n_tokens as integer) as n_tokens

    from source

)

select * from renamed
