with payments as (
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
from {{ ref('stg_orders') }} as o
left join payments as p on p.order_id = o.order_id
