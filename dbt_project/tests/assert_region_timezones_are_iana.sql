-- Every zone in seeds/region_timezones.csv must be a name DuckDB (ICU) knows.
select seed.country_code, seed.province_code, seed.timezone
from {{ ref('region_timezones') }} as seed
where seed.timezone not in (select name from pg_timezone_names())
