-- Which token types' predictions move most between consecutive checkpoints of a seed: per
-- (suite, size, token type), the mean KL(p_step || p_previous) over every context where the
-- token is the one predicted, every seed and every consecutive pair of checkpoints, with its
-- text and its frequency in the evaluation set. movement_early and movement_late split the
-- steps at the median step of the size's extracted checkpoints, so that a token that moves early
-- and settles (or the reverse) shows.

with consecutive as (
    select suite, size, step, seed, from_step
    from {{ ref('mart_trajectory_kl') }}
    where is_previous
),

split as (
    select suite, size, quantile_disc(step, 0.5) as median_step
    from consecutive
    group by suite, size
),

moves as (
    select
        trajectory.suite,
        trajectory.size,
        trajectory.step,
        tokens.token_id,
        trajectory.kl_later_earlier as kl
    from {{ ref('stg_trajectory_kl') }} as trajectory
    inner join consecutive
        on trajectory.suite = consecutive.suite
        and trajectory.size = consecutive.size
        and trajectory.step = consecutive.step
        and trajectory.seed = consecutive.seed
        and trajectory.from_step = consecutive.from_step
    inner join {{ ref('stg_eval_tokens') }} as tokens
        on trajectory.suite = tokens.suite and trajectory.position = tokens.position
)

select
    moves.suite,
    moves.size,
    moves.token_id,
    any_value(vocabulary.token_text) as token_text,
    count(*) as n_moves,
    count(distinct moves.step) as n_steps,
    avg(moves.kl) as movement,
    avg(moves.kl) filter (where moves.step <= split.median_step) as movement_early,
    avg(moves.kl) filter (where moves.step > split.median_step) as movement_late

from moves
inner join split on moves.suite = split.suite and moves.size = split.size
left join {{ ref('stg_vocabulary') }} as vocabulary
    on moves.suite = vocabulary.suite and moves.token_id = vocabulary.token_id
group by moves.suite, moves.size, moves.token_id
