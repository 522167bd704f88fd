-- silver.clientes
SELECT COUNT(*) AS "c0", COUNT(CASE WHEN "id" IS NULL THEN 1 END) AS "c1", COUNT(CASE WHEN "cpf" IS NULL THEN 1 END) AS "c2", COUNT("id") - COUNT(DISTINCT "id") AS "c3", COUNT(CASE WHEN NOT "uf" IS NULL AND NOT "uf" IN ('AC', 'AL', 'AP', 'AM', 'BA', 'CE', 'DF', 'ES', 'GO', 'MA', 'MT', 'MS', 'MG', 'PA', 'PB', 'PR', 'PE', 'PI', 'RJ', 'RN', 'RS', 'RO', 'RR', 'SC', 'SP', 'SE', 'TO') THEN 1 END) AS "c4", MAX("updated_at") AS "c5", COUNT(CASE WHEN NOT COALESCE(("renda_mensal" >= 0), FALSE) THEN 1 END) AS "c6" FROM "silver"."clientes";
-- silver.clientes not_null_id sample
SELECT * FROM "silver"."clientes" WHERE "id" IS NULL LIMIT 5;
-- silver.clientes not_null_cpf sample
SELECT * FROM "silver"."clientes" WHERE "cpf" IS NULL LIMIT 5;
-- silver.clientes unique_id sample
SELECT "id", COUNT(*) AS "rows" FROM "silver"."clientes" WHERE NOT "id" IS NULL GROUP BY "id" HAVING COUNT(*) > 1 ORDER BY COUNT(*) DESC LIMIT 5;
-- silver.clientes accepted_values_uf sample
SELECT * FROM "silver"."clientes" WHERE NOT "uf" IS NULL AND NOT "uf" IN ('AC', 'AL', 'AP', 'AM', 'BA', 'CE', 'DF', 'ES', 'GO', 'MA', 'MT', 'MS', 'MG', 'PA', 'PB', 'PR', 'PE', 'PI', 'RJ', 'RN', 'RS', 'RO', 'RR', 'SC', 'SP', 'SE', 'TO') LIMIT 5;
-- silver.clientes renda_nao_negativa sample
SELECT * FROM "silver"."clientes" WHERE NOT COALESCE(("renda_mensal" >= 0), FALSE) LIMIT 5;
-- gold.clientes_por_uf
SELECT COUNT(*) AS "c0" FROM "gold"."clientes_por_uf";
-- gold.clientes_por_uf total_ativos
SELECT (SELECT SUM("clientes") FROM "gold"."clientes_por_uf" AS "clientes_por_uf") AS "left", (SELECT COUNT(*) FROM "silver"."clientes" AS "clientes" WHERE "ativo") AS "right";
