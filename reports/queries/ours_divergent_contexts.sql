-- The contexts where the seeds disagree most, every suite: at each size's last step, the
-- contexts of mart_divergent_contexts (rank 1: the largest mean KL between seeds), one row per
-- context and seed, with that seed's top predictions as "text" probability, most probable first
-- (#id where the lake has no vocabulary), and the probability it gave the target.
select
    contexts.suite,
    contexts.size,
    contexts.step,
    contexts.rank,
    contexts.mean_kl,
    contexts.context_len > contexts.context_tokens_shown as context_cut,
    contexts.context_text,
    contexts.target_text,
    predictions.seed,
    array_to_string(
        list_transform(
            range(1, len(predictions.top_token_ids) + 1),
            lambda i: coalesce(to_json(predictions.top_token_texts[i])::varchar, '#' || predictions.top_token_ids[i])
                || ' ' || printf('%.2f', predictions.top_probabilities[i])
        ),
        ' · '
    ) as top_predictions,
    predictions.target_probability
from mart_divergent_contexts as contexts
inner join mart_divergent_context_predictions as predictions
    on contexts.suite = predictions.suite
    and contexts.size = predictions.size
    and contexts.step = predictions.step
    and contexts.rank = predictions.rank
where contexts.step = (
    select max(step) from mart_divergent_contexts as same_size
    where same_size.suite = contexts.suite and same_size.size = contexts.size
)
order by contexts.suite, contexts.n_params, contexts.rank, predictions.seed;
