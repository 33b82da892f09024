-- The contexts where the seeds disagree most, to read (as model-diffing tools keep them): per
-- checkpoint partition (suite, size, step), the var divergent_contexts_n contexts with the
-- largest mean KL over ordered seed pairs (int_context_convergence), rank 1 the largest, ties by
-- position. Each with the text of its context's last var divergent_context_tokens tokens and
-- its target's; each seed's top predictions there are mart_divergent_context_predictions.
--
-- A context is what the model saw before the target: the tokens of its window before it, which
-- are the context_len positions before it in the same document (positions run through each
-- document without gaps; with overlapping windows some of them were scored in the window before,
-- so matching on window_id would lose them). The text is cut from the document between the
-- first shown token's start and the target's, so it keeps the document's own spacing. A masked
-- LM also saw the rest of its window after the target; only the part before is shown.
--
-- A table, not incremental by partition: its rows depend on var divergent_contexts_n, which no
-- partition's input digest records (macros/partitions.sql), and it reads only
-- int_context_convergence, already in the warehouse, and the evaluation set: a full rebuild is
-- a sort of the contexts' mean KL per partition.

{% set n_contexts = var('divergent_contexts_n') | int %}
{% set context_tokens = var('divergent_context_tokens') | int %}

with checkpoints as (

    select * from {{ ref('stg_checkpoints') }}

),

context_convergence as (

    select * from {{ ref('int_context_convergence') }}

),

eval_tokens as (

    select * from {{ ref('stg_eval_tokens') }}

),

eval_documents as (

    select * from {{ ref('stg_eval_documents') }}

),

ranked as (

    select
        suite,
        size,
        step,
        position,
        n_pairs,
        mean_kl,
        row_number() over (partition by suite, size, step order by mean_kl desc, position) as rank

    from context_convergence
    where n_pairs > 0

),

divergent as (

    select * from ranked where rank <= {{ n_contexts }}

),

with_target as (

    select
        divergent.*,
        target.eval_set,
        target.doc_id,
        target.token_id as target_token_id,
        target.token_text as target_text,
        target.char_start as target_char_start,
        target.context_len,
        least(target.context_len, {{ context_tokens }}) as context_tokens_shown

    from divergent
    inner join eval_tokens as target
        on divergent.suite = target.suite
        and divergent.position = target.position

),

with_context as (

    select
        with_target.*,
        -- the document's text from the first shown context token to the target ('' at a
        -- window's first token); substring counts characters from 1, as char_start from 0
        coalesce(
            substring(eval_documents.text, first_shown.char_start + 1, with_target.target_char_start - first_shown.char_start),
            ''
        ) as context_text

    from with_target
    left join eval_tokens as first_shown
        on with_target.suite = first_shown.suite
        and first_shown.position = with_target.position - with_target.context_tokens_shown
        and with_target.context_tokens_shown > 0
    inner join eval_documents
        on with_target.eval_set = eval_documents.eval_set
        and with_target.doc_id = eval_documents.doc_id

),

final as (

    select
        with_context.suite,
        with_context.size,
        with_context.step,
        checkpoints.n_params,
        with_context.rank,
        with_context.position,
        with_context.mean_kl,
        with_context.n_pairs,
        with_context.doc_id,
        with_context.context_len,
        with_context.context_tokens_shown,
        with_context.context_text,
        with_context.target_token_id,
        with_context.target_text

    from with_context
    inner join checkpoints
        on with_context.suite = checkpoints.suite
        and with_context.size = checkpoints.size
        and with_context.step = checkpoints.step

)

select * from final
order by suite, n_params, step, rank
