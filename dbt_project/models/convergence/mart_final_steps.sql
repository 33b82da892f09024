-- Per (suite, size): which checkpoint is final (the step the size trains to), whether it is
-- extracted, and so whether the final-surprisal bins exist yet, in words a reader of the
-- report can use. The final-surprisal condition of mart_conditional_convergence has rows for a
-- size only once `final_extracted`.

with last_steps as (

    select * from {{ ref('int_last_steps') }}

)

select
    suite,
    size,
    last_step,
    final_step,
    final_step_configured,
    final_extracted,
    final_surprisal_step,
    case
        when not final_step_configured then
            'the suite does not say which step is final: the last extracted, step '
            || last_step || ', stands in'
        when final_extracted then 'final checkpoint, step ' || final_step || ', extracted'
        else 'final checkpoint, step ' || final_step || ', not extracted yet (last extracted: step '
            || last_step || '): no final-surprisal bins until it is'
    end as status

from last_steps
order by suite, size
