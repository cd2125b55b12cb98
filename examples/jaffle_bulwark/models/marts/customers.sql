with stg_customers as (
    select * from {{ ref('stg_customers') }}
),

order_totals as (
    select
        customer_id,
        count(*) as order_count,
        min(order_date) as first_order_date,
        sum(amount) as lifetime_value
    from {{ ref('orders') }}
    where status <> 'returned'
    group by customer_id
)

select
    c.customer_id,
    c.first_name,
    c.last_name,
    c.signup_date,
    cast(coalesce(t.order_count, 0) as integer) as order_count,
    t.first_order_date,
    cast(coalesce(t.lifetime_value, 0) as decimal(18, 2)) as lifetime_value
from stg_customers as c
left join order_totals as t on t.customer_id = c.customer_id
