-- Features of each evaluation token s_t that conditional convergence and the regression condition
-- on (Fehlauer et al. 2025): the frequency of its type, binned by decade; the Penn tag of its word
-- and of the previous token's word, with their coarse groups and word classes (function,
-- content). Tags outside the penn_tags seed
-- are unknown and become NULL, so those tokens drop out of every PoS condition.

{#- What the frequency bins count is each suite's eval.frequency setting, stored as its
    token_frequency table; the var overrides it for one build: 'eval' counts the evaluation tokens,
    'train' the unigram reference. -#}
{% set frequency_corpus = var('frequency_corpus', 'configured') %}
{% if frequency_corpus not in ('configured', 'eval', 'train') %}
    {{ exceptions.raise_compiler_error(
        "dbt var frequency_corpus must be 'configured', 'eval' or 'train', not '" ~ frequency_corpus ~ "'") }}
{% endif %}
-- depends_on: {{ ref('stg_token_frequency') }}
-- depends_on: {{ ref('stg_unigram') }}

with eval_tokens as (

    select * from {{ ref('stg_eval_tokens') }}

),

token_pos as (

    select * from {{ ref('stg_token_pos') }}

),

penn_tags as (

    select * from {{ ref('penn_tags') }}

),

type_counts as (

    {% if frequency_corpus == 'eval' %}
    -- occurrences of each type in the suite's evaluation set
    select
        suite,
        token_id,
        count(*) as frequency

    from eval_tokens
    group by suite, token_id
    {% else %}
    -- occurrences of each type in the frequency corpus, or the unigram reference's training
    -- split (types never seen have no row)
    select
        suite,
        token_id,
        token_count as frequency

    from {{ ref('stg_unigram' if frequency_corpus == 'train' else 'stg_token_frequency') }}
    {% endif %}

),

with_frequency as (

    select
        eval_tokens.suite,
        eval_tokens.position,
        eval_tokens.token_id,
        eval_tokens.token_text,
        cast(coalesce(type_counts.frequency, 0) as bigint) as frequency

    from eval_tokens
    left join type_counts
        on eval_tokens.suite = type_counts.suite
        and eval_tokens.token_id = type_counts.token_id

),

binned as (

    select
        *,
        -- floor(log10(frequency)) from the digit count: exact, where log10 of a power of ten
        -- may round below it
        case
            when frequency > 0 then length(cast(frequency as varchar)) - 1
            else -1
        end as frequency_bin_order

    from with_frequency

),

labelled as (

    select
        *,
        case
            when frequency_bin_order < 0 then '0'
            else format('{:,}', cast(pow(10, frequency_bin_order) as bigint))
                || '–'
                || format('{:,}', cast(pow(10, frequency_bin_order + 1) as bigint) - 1)
        end as frequency_bin

    from binned

),

final as (

    select
        labelled.suite,
        labelled.position,
        labelled.token_id,
        labelled.token_text,
        labelled.frequency,
        labelled.frequency_bin_order,
        labelled.frequency_bin,
        token_pos.word,
        pos_tags.tag as pos,
        pos_tags.pos_group,
        pos_tags.word_class,
        prev_pos_tags.tag as prev_pos,
        prev_pos_tags.pos_group as prev_pos_group,
        prev_pos_tags.word_class as prev_word_class

    from labelled
    left join token_pos
        on labelled.suite = token_pos.suite
        and labelled.position = token_pos.position
    left join penn_tags as pos_tags
        on token_pos.pos = pos_tags.tag
    left join penn_tags as prev_pos_tags
        on token_pos.prev_pos = prev_pos_tags.tag

)

select * from final
