-- refs are read in CTEs, never aliased in place: `dbt build --empty` wraps each ref in
-- a subquery with its own alias, and PostgreSQL rejects an alias right after a ref then.
with stg_orders as (
    select * from {{ ref('stg_orders') }}
),

payments as (
    select
        order_id,
        sum(amount) as amount,
        count(*) as payment_count
    from {{ ref('stg_payments') }}
    group by order_id
)

select
    o.order_id,
    o.customer_id,
    o.order_date,
    o.status,
    cast(coalesce(p.amount, 0) as decimal(18, 2)) as amount,
    cast(coalesce(p.payment_count, 0) as integer) as payment_count
from stg_orders as o
left join payments as p on p.order_id = o.order_id
