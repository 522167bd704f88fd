"""Deterministic synthetic landing data for the ``clientes`` demo table.

Generates realistic Brazilian customer records shaped like the transactional
source RT2.tbfc6_clientes, as NDJSON lines, using only the standard library.

* ``generate_records`` yields one JSON object per line (no trailing newline).
* ``write_landing`` spreads a stream over NDJSON files (optionally gzipped)
  under a table's landing folder, atomically and with deterministic mtimes.

Every line is a pure function of ``(seed, i, rows)`` (plus ``start``, ``span``
and ``bad``): the same arguments always give the same bytes.  Randomness comes
from tabulation hashing over per-seed tables, so any record can be rebuilt
without generating the ones before it (updates rebuild their original row).

Stream shape: the first ``rows // 10`` rows are new customers (an initial
load, ``created_at`` in the past); after that, rows come in blocks of ten with
exactly one UPDATE of an earlier id per block (~10 %).  ``updated_at`` never
decreases along the stream; it runs from ``start`` to ``start + span``.  With
``bad=True`` a few deliberately broken lines sit at ``bad_positions(rows, seed)``.
"""

from __future__ import annotations

import contextlib
import gzip
import math
import os
import random
import secrets
import unicodedata
from array import array
from collections.abc import Callable, Iterator, Sequence
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from statistics import NormalDist

__all__ = [
    "BAD_KINDS",
    "BRT",
    "DEFAULT_SPAN",
    "DEFAULT_START",
    "ENDERECO_FIELDS",
    "FIELDS",
    "UFS",
    "bad_positions",
    "file_mtimes",
    "generate_records",
    "record_line",
    "write_landing",
]

BRT = timezone(timedelta(hours=-3))
"""The fixed ``-03:00`` offset used for every timestamp (Brasília time)."""

DEFAULT_START = datetime(2025, 11, 24, 6, 0, 0, tzinfo=BRT)
DEFAULT_SPAN = timedelta(hours=12)

FIELDS = (
    "id",
    "cpf",
    "nome",
    "email",
    "telefone",
    "data_nascimento",
    "endereco",
    "renda_mensal",
    "ativo",
    "tags",
    "segmento",
    "canal_origem",
    "created_at",
    "updated_at",
)
"""The top-level fields of a good record, in output order.  ``endereco`` is an
object: logradouro, numero, complemento (string or null), bairro, cidade, uf,
cep.  The ``unknown_field`` bad records add ``campo_legado`` at the end."""

ENDERECO_FIELDS = ("logradouro", "numero", "complemento", "bairro", "cidade", "uf", "cep")

BAD_KINDS = (
    "malformed_json",  # the object is cut short: not valid JSON
    "wrong_type",  # "renda_mensal": "abc" or "id": "<id>a"
    "unknown_field",  # an extra "campo_legado": "x"
    "cpf_wrong_length",  # "123.456.78" (8 digits)
    "email_without_at",  # the "@" became "."
    "invalid_uf",  # "uf": "XX"
)

UFS = ("AC AL AP AM BA CE DF ES GO MA MT MS MG PA PB PR PE PI RJ RN RS RO RR SC SP SE TO").split()

# --------------------------------------------------------------------------
# Reference data
# --------------------------------------------------------------------------

# UF, population in thousands (Censo 2022, rounded), CPF fiscal-region digit.
_UF_DATA = """
SP 44411 8|MG 20539 6|RJ 16055 7|BA 14141 5|PR 11444 9|RS 10883 0|PE 9059 4
CE 8794 3|PA 8121 2|SC 7610 9|GO 7056 1|MA 6776 3|PB 3974 4|AM 3941 2|ES 3834 7
MT 3659 1|RN 3302 4|PI 3271 3|AL 3128 4|DF 2817 1|MS 2757 1|SE 2210 5|RO 1582 2
TO 1511 1|AC 830 2|AP 734 2|RR 636 2
"""

# UF: city:population(thousands):DDD:first CEP prefix-last CEP prefix; ...
_CITY_DATA = """
SP: São Paulo:11450:11:01000-05999; Guarulhos:1291:11:07000-07399;
 Campinas:1139:19:13000-13139; São Bernardo do Campo:811:11:09600-09899;
 Santo André:748:11:09000-09299; Osasco:728:11:06000-06299;
 Sorocaba:723:15:18000-18109; Ribeirão Preto:698:16:14000-14114;
 São José dos Campos:697:12:12200-12249; São José do Rio Preto:480:17:15000-15099;
 Jundiaí:443:11:13200-13219; Piracicaba:423:19:13400-13427;
 Santos:418:13:11000-11099; Bauru:379:14:17000-17099
RJ: Rio de Janeiro:6211:21:20000-23799; São Gonçalo:896:21:24400-24799;
 Duque de Caxias:808:21:25000-25299; Nova Iguaçu:785:21:26000-26099;
 Campos dos Goytacazes:483:22:28000-28099; Niterói:481:21:24000-24399;
 Petrópolis:278:24:25600-25799; Volta Redonda:261:24:27200-27299
MG: Belo Horizonte:2316:31:30000-31999; Uberlândia:713:34:38400-38414;
 Contagem:621:31:32000-32399; Juiz de Fora:540:32:36000-36099;
 Montes Claros:414:38:39400-39409; Betim:411:31:32500-32699;
 Uberaba:337:34:38000-38099; Governador Valadares:257:33:35000-35099;
 Ipatinga:227:31:35160-35164
BA: Salvador:2418:71:40000-42499; Feira de Santana:616:75:44000-44099;
 Vitória da Conquista:370:77:45000-45099; Camaçari:300:71:42800-42849;
 Juazeiro:237:74:48900-48909; Itabuna:186:73:45600-45612
PR: Curitiba:1773:41:80000-82999; Londrina:555:43:86000-86099;
 Maringá:409:44:87000-87099; Ponta Grossa:358:42:84000-84099;
 Cascavel:348:45:85800-85829; São José dos Pinhais:329:41:83000-83099;
 Foz do Iguaçu:285:45:85850-85869
RS: Porto Alegre:1332:51:90000-91999; Caxias do Sul:463:54:95000-95124;
 Canoas:347:51:92000-92479; Pelotas:325:53:96000-96099;
 Santa Maria:271:55:97000-97119; Novo Hamburgo:227:51:93300-93599;
 Passo Fundo:206:54:99000-99099
PE: Recife:1488:81:50000-52999; Jaboatão dos Guararapes:643:81:54000-54499;
 Petrolina:386:87:56300-56339; Caruaru:378:81:55000-55099;
 Olinda:349:81:53000-53399; Paulista:342:81:53400-53499
CE: Fortaleza:2428:85:60000-61599; Caucaia:355:85:61600-61699;
 Juazeiro do Norte:286:88:63000-63099; Maracanaú:234:85:61900-61939;
 Sobral:203:88:62000-62099
PA: Belém:1303:91:66000-66999; Ananindeua:478:91:67000-67199;
 Santarém:331:93:68000-68099; Marabá:266:94:68500-68509;
 Castanhal:192:91:68740-68749
SC: Joinville:616:47:89200-89239; Florianópolis:537:48:88000-88099;
 Blumenau:361:47:89000-89099; São José:270:48:88100-88122;
 Itajaí:264:47:88300-88319; Chapecó:254:49:89800-89816;
 Criciúma:214:48:88800-88819; Balneário Camboriú:139:47:88330-88339
GO: Goiânia:1437:62:74000-74899; Aparecida de Goiânia:527:62:74900-74999;
 Anápolis:398:62:75000-75149; Rio Verde:225:64:75900-75909
MA: São Luís:1037:98:65000-65109; Imperatriz:273:99:65900-65919;
 São José de Ribamar:244:98:65110-65119; Timon:174:99:65630-65639
PB: João Pessoa:833:83:58000-58099; Campina Grande:419:83:58400-58439;
 Santa Rita:149:83:58300-58309; Patos:103:83:58700-58709
AM: Manaus:2063:92:69000-69099; Itacoatiara:103:92:69100-69109;
 Manacapuru:101:92:69400-69409; Parintins:96:92:69150-69159
ES: Serra:520:27:29160-29184; Vila Velha:467:27:29100-29129;
 Cariacica:353:27:29140-29159; Vitória:322:27:29000-29099;
 Cachoeiro de Itapemirim:185:28:29300-29319; Linhares:166:27:29900-29919
MT: Cuiabá:650:65:78000-78099; Várzea Grande:300:65:78110-78159;
 Rondonópolis:244:66:78700-78749; Sinop:196:66:78550-78559
RN: Natal:751:84:59000-59139; Mossoró:264:84:59600-59649;
 Parnamirim:252:84:59140-59159
PI: Teresina:866:86:64000-64099; Parnaíba:162:86:64200-64219;
 Picos:83:89:64600-64607
AL: Maceió:957:82:57000-57099; Arapiraca:234:82:57300-57319
DF: Brasília:2817:61:70000-72799
MS: Campo Grande:898:67:79000-79129; Dourados:243:67:79800-79849;
 Três Lagoas:132:67:79600-79609
SE: Aracaju:602:79:49000-49099; Nossa Senhora do Socorro:192:79:49160-49169;
 Lagarto:105:79:49400-49409
RO: Porto Velho:460:69:76800-76834; Ji-Paraná:124:69:76900-76914;
 Ariquemes:96:69:76870-76879
TO: Palmas:302:63:77000-77270; Araguaína:171:63:77800-77829;
 Gurupi:85:63:77400-77449
AC: Rio Branco:364:68:69900-69923; Cruzeiro do Sul:91:68:69980-69981
AP: Macapá:442:96:68900-68914; Santana:107:96:68925-68929
RR: Boa Vista:413:95:69300-69339; Rorainópolis:31:95:69373-69373
"""

_GENERIC_BAIRROS = (
    "Centro|Jardim América|Jardim Europa|Vila Nova|Boa Vista|Santa Cruz|São José|"
    "Santo Antônio|Bela Vista|Jardim das Flores|Cidade Nova|Jardim Primavera|"
    "Planalto|Distrito Industrial|Vila Maria|Nossa Senhora Aparecida|São Cristóvão|"
    "Jardim Botânico|Parque das Árvores|Alto da Boa Vista|Liberdade|Santa Mônica|"
    "Novo Horizonte|Jardim Brasil|Vila Operária|Morada do Sol|Esplanada|Floresta|"
    "Ipiranga|Jardim Itália|Santa Luzia|São Francisco|São Benedito|Vila Rica|"
    "Cidade Alta|Cidade Jardim|Jardim Tropical|Parque Industrial|Vila Esperança|"
    "Conjunto Habitacional"
).split("|")

_CITY_BAIRROS = {
    "São Paulo": "Pinheiros|Vila Mariana|Moema|Tatuapé|Santana|Mooca|Itaim Bibi|"
    "Perdizes|Lapa|Butantã|Ipiranga|Penha|Itaquera|Capão Redondo|Jabaquara|"
    "Liberdade|Bela Vista|Consolação|Brás|Vila Prudente|Campo Limpo|Santo Amaro|"
    "Jardim Paulista|Vila Madalena|Cidade Tiradentes|Sapopemba|Grajaú|"
    "Brasilândia|Freguesia do Ó|Casa Verde|Tucuruvi|Saúde",
    "Rio de Janeiro": "Copacabana|Tijuca|Botafogo|Barra da Tijuca|Ipanema|Leblon|"
    "Flamengo|Méier|Madureira|Campo Grande|Bangu|Jacarepaguá|"
    "Recreio dos Bandeirantes|Vila Isabel|Grajaú|Centro|Laranjeiras|Penha|"
    "Realengo|Santa Cruz|Ilha do Governador|Irajá",
    "Belo Horizonte": "Savassi|Pampulha|Lourdes|Funcionários|Buritis|Castelo|Sion|"
    "Santa Efigênia|Barreiro|Venda Nova|Santa Tereza|Gutierrez|Padre Eustáquio|"
    "Floresta|Centro|Serra",
    "Brasília": "Asa Sul|Asa Norte|Lago Sul|Lago Norte|Sudoeste|Noroeste|Taguatinga|"
    "Ceilândia|Águas Claras|Guará|Samambaia|Sobradinho|Gama|Planaltina|Cruzeiro|"
    "Vicente Pires",
    "Salvador": "Barra|Pituba|Rio Vermelho|Itapuã|Ondina|Graça|Brotas|Liberdade|"
    "Cabula|Imbuí|Stella Maris|Caminho das Árvores|Federação|Pernambués|Paripe",
    "Fortaleza": "Aldeota|Meireles|Benfica|Messejana|Papicu|Fátima|Cocó|Parangaba|"
    "Montese|Mucuripe|Centro|Barra do Ceará",
    "Recife": "Boa Viagem|Casa Forte|Graças|Espinheiro|Madalena|Torre|Várzea|"
    "Boa Vista|Pina|Imbiribeira|Afogados|Casa Amarela",
    "Curitiba": "Batel|Água Verde|Centro|Bigorrilho|Portão|Boqueirão|Cajuru|"
    "Santa Felicidade|Cabral|Juvevê|Rebouças|Sítio Cercado|Cidade Industrial",
    "Porto Alegre": "Moinhos de Vento|Bela Vista|Menino Deus|Petrópolis|"
    "Cidade Baixa|Bom Fim|Centro Histórico|Tristeza|Partenon|Sarandi|Restinga|"
    "Auxiliadora",
    "Manaus": "Adrianópolis|Ponta Negra|Centro|Cidade Nova|Aleixo|Flores|Parque 10 de Novembro|Compensa|Japiim|Chapada",
    "Belém": "Nazaré|Umarizal|Batista Campos|Marco|Pedreira|Jurunas|Guamá|Cremação|Reduto|Sacramenta",
    "Goiânia": "Setor Bueno|Setor Marista|Setor Oeste|Jardim Goiás|Setor Central|"
    "Setor Sul|Setor Universitário|Parque Amazônia|Jardim América|"
    "Setor Pedro Ludovico",
}

_STREET_NAMES = (
    "das Flores|São João|Sete de Setembro|XV de Novembro|Tiradentes|Dom Pedro II|"
    "Santos Dumont|Marechal Deodoro|Barão do Rio Branco|Duque de Caxias|"
    "Floriano Peixoto|Rui Barbosa|Castro Alves|José de Alencar|Visconde de Mauá|"
    "das Palmeiras|dos Andradas|Primeiro de Maio|Treze de Maio|Bela Vista|da Paz|"
    "do Comércio|da Independência|Princesa Isabel|Pedro Álvares Cabral|"
    "Machado de Assis|Monteiro Lobato|Carlos Gomes|Benjamin Constant|"
    "Quintino Bocaiúva|Bento Gonçalves|Oswaldo Cruz|Olavo Bilac|Cecília Meireles|"
    "Amazonas|Bahia|Paraná|Minas Gerais|Goiás|Pernambuco|Ceará|Maranhão|Alagoas|"
    "Sergipe|Piauí|dos Ipês|das Acácias|dos Girassóis|das Orquídeas|dos Jasmins|"
    "das Hortênsias|Sete de Abril|Manoel da Nóbrega|Padre Anchieta|"
    "Anita Garibaldi|Getúlio Vargas|Juscelino Kubitschek|Presidente Vargas|Brasil|"
    "São Sebastião|Santa Catarina|João Pessoa|Frei Caneca|Voluntários da Pátria|"
    "Tomé de Souza|Chico Mendes|Ayrton Senna|Dom Bosco|Vinte e Um de Abril"
).split("|")

_STREET_TYPES = (
    ("Rua", 70),
    ("Avenida", 17),
    ("Travessa", 5),
    ("Alameda", 4),
    ("Praça", 2),
    ("Estrada", 2),
)

_FIRST_F = (
    "Maria:40|Ana:24|Francisca:8|Antônia:6|Adriana:6|Juliana:8|Márcia:5|Fernanda:8|"
    "Patrícia:7|Aline:6|Sandra:5|Camila:7|Amanda:6|Bruna:6|Jéssica:5|Letícia:5|"
    "Júlia:7|Luciana:5|Vanessa:5|Mariana:7|Gabriela:6|Vera:3|Vitória:4|Larissa:5|"
    "Cláudia:4|Beatriz:6|Luana:3|Rita:3|Sônia:3|Renata:5|Eliane:3|Josefa:3|"
    "Simone:4|Natália:4|Cristiane:4|Carla:4|Débora:3|Rosângela:3|Jaqueline:3|"
    "Rosa:2|Daniela:4|Aparecida:3|Marlene:2|Terezinha:2|Raimunda:2|Andréa:3|"
    "Fabiana:3|Lúcia:3|Raquel:3|Ângela:3|Rafaela:3|Joana:2|Luzia:2|Elaine:3|"
    "Daniele:3|Regina:3|Daiane:2|Sabrina:2|Isabela:3|Alice:4|Helena:4|Valentina:3|"
    "Laura:4|Manuela:3|Sophia:3|Lívia:3|Giovanna:3|Heloísa:3|Lorena:3|Yasmin:2|"
    "Cecília:3|Eduarda:3|Clara:3|Sarah:2|Lara:2|Melissa:2|Carolina:4|Tatiane:3|"
    "Priscila:3|Kelly:2|Michele:3|Viviane:3|Thaís:3|Bianca:3|Érica:2|Silvana:2|"
    "Cíntia:2|Karina:2|Mônica:3|Denise:3|Elisângela:2|Roberta:3|Paula:3|Gisele:2|"
    "Flávia:3|Sueli:2|Tânia:2"
)
_FIRST_M = (
    "José:36|João:24|Antônio:14|Francisco:10|Carlos:12|Paulo:10|Pedro:10|Lucas:10|"
    "Luiz:8|Marcos:8|Luís:5|Gabriel:9|Rafael:8|Daniel:7|Marcelo:7|Bruno:7|"
    "Eduardo:6|Felipe:7|Raimundo:4|Rodrigo:6|Manoel:4|Mateus:5|André:6|Fernando:6|"
    "Fábio:5|Leonardo:5|Gustavo:6|Guilherme:6|Leandro:4|Tiago:4|Anderson:4|"
    "Ricardo:5|Márcio:4|Jorge:4|Sebastião:3|Alexandre:5|Roberto:5|Edson:3|Diego:4|"
    "Vitor:4|Sérgio:4|Cláudio:3|Matheus:5|Thiago:5|Geraldo:3|Adriano:3|Luciano:3|"
    "Júlio:3|Renato:4|Alex:3|Vinícius:4|Rogério:3|Samuel:3|Ronaldo:3|Mário:3|"
    "Flávio:3|Igor:3|Douglas:3|Davi:3|Miguel:4|Arthur:4|Heitor:3|Bernardo:3|"
    "Enzo:3|Lorenzo:2|Théo:2|Benjamin:2|Nicolas:2|Henrique:3|Murilo:3|Caio:3|"
    "Otávio:2|Wellington:3|Wagner:3|Reginaldo:2|Valdir:2|Cícero:2|Severino:2|"
    "Joaquim:2|Benedito:2|Osvaldo:2|Nelson:2|Everton:2|Jefferson:2|Wesley:2|"
    "Emerson:2|Hugo:2|Raul:2|Ivan:2|Giovanni:2|Kauã:2|Ruan:1|Yuri:2|Fernandes:0"
)
_MIDDLE_F = (
    "Aparecida|Eduarda|Clara|Luiza|Cristina|Helena|Vitória|Júlia|Beatriz|Carolina|"
    "Gabriela|Alice|Cecília|Fernanda|Regina|Lúcia|Teresa|Rita|Paula|Isabel"
).split("|")
_MIDDLE_M = (
    "Pedro|Paulo|Carlos|Henrique|Eduardo|Gabriel|Vitor|Miguel|Lucas|Antônio|"
    "Roberto|Augusto|Guilherme|Felipe|Rafael|Luiz|Ricardo|Marcos|Francisco|Batista"
).split("|")
# surname:weight:particle ("-" = none)
_SURNAMES = (
    "Silva:80:da|Santos:60:dos|Oliveira:50:de|Souza:40:de|Rodrigues:30:-|"
    "Ferreira:30:-|Alves:28:-|Pereira:28:-|Lima:25:de|Gomes:24:-|Costa:20:da|"
    "Ribeiro:20:-|Martins:18:-|Carvalho:17:de|Almeida:16:de|Lopes:15:-|Soares:15:-|"
    "Fernandes:14:-|Vieira:14:-|Barbosa:13:-|Rocha:12:da|Dias:12:-|"
    "Nascimento:12:do|Andrade:11:de|Moreira:11:-|Nunes:10:-|Marques:10:-|"
    "Machado:10:-|Mendes:10:-|Freitas:10:de|Cardoso:9:-|Ramos:9:-|Gonçalves:9:-|"
    "Santana:9:de|Teixeira:8:-|Araújo:10:de|Correia:7:-|Cavalcanti:6:-|Monteiro:6:-|"
    "Moura:6:de|Pinto:6:-|Cunha:6:da|Castro:6:de|Campos:6:-|Reis:6:dos|Melo:7:de|"
    "Batista:6:-|Barros:6:de|Farias:5:de|Pires:5:-|Xavier:4:-|Azevedo:5:de|"
    "Brito:5:de|Fonseca:5:da|Miranda:5:de|Borges:5:-|Sales:4:de|Medeiros:5:de|"
    "Aguiar:4:de|Coelho:4:-|Viana:4:-|Tavares:4:-|Siqueira:4:de|Moraes:5:de|"
    "Prado:3:do|Macedo:3:de|Rezende:3:de|Guimarães:4:-|Queiroz:4:de|Bezerra:4:-|"
    "Duarte:4:-|Assis:3:de|Sampaio:3:-|Leite:4:-|Nogueira:4:-|Matos:4:de|"
    "Peixoto:3:-|Bastos:3:-|Amaral:3:do|Brandão:3:-|Pacheco:3:-|Vasconcelos:3:de|"
    "Magalhães:3:-|Figueiredo:3:de|Lacerda:3:de|Torres:3:-|Sousa:8:de|"
    "Conceição:6:da|Paiva:3:de|Freire:3:-|Neves:4:das|Bueno:2:-|Camargo:2:de|"
    "Toledo:2:de|Schmidt:1:-|Müller:1:-|Yamamoto:1:-|Nakamura:1:-|Sato:1:-|"
    "Rossi:1:-|Ferraz:2:-|Jesus:6:de|Luz:2:da|Paula:3:de"
)

_EMAIL_DOMAINS = (
    ("gmail.com", 30),
    ("hotmail.com", 12),
    ("outlook.com", 7),
    ("yahoo.com.br", 4),
    ("uol.com.br", 3),
    ("bol.com.br", 3),
    ("icloud.com", 2),
    ("terra.com.br", 1),
    ("empresa.com.br", 2),
)
_EMAIL_DOMAINS_PJ = (
    ("empresa.com.br", 30),
    ("gmail.com", 20),
    ("hotmail.com", 8),
    ("outlook.com", 6),
)

_TAGS = ("premium", "app", "agencia", "pix", "cartao", "investidor", "novo")
# relative tag weights per segment: varejo, alta_renda, private, pj_micro
_TAG_WEIGHTS = (
    (1, 10, 5, 12, 9, 2, 4),
    (8, 9, 6, 10, 9, 7, 2),
    (12, 6, 8, 6, 6, 12, 1),
    (1, 8, 6, 14, 8, 2, 3),
)
_SEGMENTS = ("varejo", "alta_renda", "private", "pj_micro")
_CANAIS = (("app", 6), ("agencia", 5), ("internet_banking", 3), ("correspondente", 2))
# age bands (inclusive) and relative weights per year of age
_AGE_BANDS = (
    (18, 24, 8),
    (25, 44, 10),
    (45, 59, 8),
    (60, 69, 5),
    (70, 79, 3),
    (80, 89, 1),
)

_MIN_WAGE = 1412.0
_MAX_RENDA = 80000.0
_PRIVATE_FROM = 25000.0
_ALTA_RENDA_FROM = 10000.0

# --------------------------------------------------------------------------
# Table building (lazy, once per process)
# --------------------------------------------------------------------------


def _weighted(items: Sequence[tuple[object, float]], size: int) -> list:
    """A list of ``size`` slots, each item getting slots ~ its weight (>= 1)."""
    live = [(item, w) for item, w in items if w > 0]
    total = float(sum(w for _, w in live))
    counts = [max(1, int(size * w / total)) for _, w in live]
    order = sorted(range(len(live)), key=lambda k: (size * live[k][1] / total) % 1, reverse=True)
    k = 0
    while sum(counts) < size:
        counts[order[k % len(order)]] += 1
        k += 1
    while sum(counts) > size:
        big = max(range(len(counts)), key=counts.__getitem__)
        counts[big] -= 1
    out: list = []
    for (item, _), n in zip(live, counts, strict=True):
        out.extend([item] * n)
    return out


def _ascii(text: str) -> str:
    norm = unicodedata.normalize("NFKD", text)
    return "".join(c for c in norm if not unicodedata.combining(c)).lower()


def _check_json_safe(text: str) -> str:
    if '"' in text or "\\" in text or any(ord(c) < 32 for c in text):
        raise ValueError(f"unsafe text in demo tables: {text!r}")
    return text


class _City:
    __slots__ = ("cidade", "uf", "ddd", "region", "streets", "cep_range", "tel")

    def __init__(self, cidade: str, uf: str, ddd: int, region: int):
        self.cidade = cidade
        self.uf = uf
        self.ddd = ddd
        self.region = region  # the CPF fiscal-region digit of the UF
        self.streets: list[tuple[str, str, str]] = []  # (head, tail with UF, tail with uf)
        self.cep_range = (0, 0)
        self.tel = f"+55 {ddd} 9"


class _Static:
    """Seed-independent lookup tables, built once."""

    def __init__(self) -> None:
        uf_pop: dict[str, int] = {}
        uf_region: dict[str, int] = {}
        for chunk in _UF_DATA.replace("\n", "|").split("|"):
            if chunk.strip():
                uf, pop, region = chunk.split()
                uf_pop[uf] = int(pop)
                uf_region[uf] = int(region)
        assert sorted(uf_pop) == sorted(UFS)

        self.cities: list[_City] = []
        city_weights: list[tuple[_City, float]] = []
        self.by_uf: dict[str, list[_City]] = {}
        text = _CITY_DATA.strip()
        # one UF per logical line: a line starting with "XX:" opens a UF
        logical: list[str] = []
        for line in text.split("\n"):
            if line[:1] != " " and line[2:3] == ":":
                logical.append(line)
            else:
                logical[-1] += line
        for entry in logical:
            uf, rest = entry.split(":", 1)
            specs = [s.strip() for s in rest.split(";") if s.strip()]
            parsed = []
            for spec in specs:
                name, pop, ddd, ceps = spec.split(":")
                lo, hi = (int(x) for x in ceps.split("-"))
                parsed.append((name.strip(), int(pop), int(ddd), lo, hi))
            uf_total = sum(p[1] for p in parsed)
            local: list[tuple[_City, float]] = []
            for name, pop, ddd, lo, hi in parsed:
                city = _City(_check_json_safe(name), uf, ddd, uf_region[uf])
                self.cities.append(city)
                city.cep_range = (lo, hi)
                city_weights.append((city, uf_pop[uf] * pop / uf_total))
                local.append((city, pop))
                self._build_streets(city, lo, hi)
            self.by_uf[uf] = _weighted(local, 256)
        assert sorted(self.by_uf) == sorted(UFS)
        self.city_table: list[_City] = _weighted(city_weights, 8192)

        def names(spec: str) -> list[tuple[str, str]]:
            out = []
            for part in spec.split("|"):
                name, w = part.split(":")
                out.append(((_check_json_safe(name), _ascii(name)), int(w)))
            return _weighted(out, 256)

        self.first = (names(_FIRST_F), names(_FIRST_M))
        # middle names: ~40 % of people have one
        self.middle = tuple(
            _weighted(
                [((None, None), 30)] + [((_check_json_safe(m), _ascii(m)), 1) for m in mids],
                128,
            )
            for mids in (_MIDDLE_F, _MIDDLE_M)
        )
        surnames = []
        for part in _SURNAMES.split("|"):
            name, w, particle = part.split(":")
            with_p = name if particle == "-" else f"{particle} {name}"
            surnames.append(((_check_json_safe(name), with_p, _ascii(name)), int(w)))
        self.surnames: list[tuple[str, str, str]] = _weighted(surnames, 1024)

        self.domains = _weighted(_EMAIL_DOMAINS, 64)
        self.domains_pj = _weighted(_EMAIL_DOMAINS_PJ, 64)
        self.canais = _weighted(_CANAIS, 16)
        self.ages = _weighted([(age, w) for lo, hi, w in _AGE_BANDS for age in range(lo, hi + 1)], 1024)
        self.d2 = [f"{k:02d}" for k in range(100)]
        self.d4 = [f"{k:04d}" for k in range(10000)]

        rnd = random.Random("lh360-demo-static-v1")
        self.numeros = self._numeros(rnd)
        self.complementos = self._complementos(rnd)
        self.tags = tuple(self._tags(rnd, w, seg) for w, seg in zip(_TAG_WEIGHTS, _SEGMENTS, strict=True))
        self.renda_base, self.renda_width, self.renda_cents, self.renda_seg = self._renda()
        # birthdays: "MM-DD" of a common year (no 29 February)
        self.month_days = [(date(2001, 1, 1) + timedelta(days=k)).strftime("%m-%d") for k in range(365)]

        self.phone_a = [str(6000 + k % 4000) for k in range(4096)]
        self.phone_b = [self.d4[k % 10000] for k in range(16384)]
        # ~90.6 % active; an update that touches ativo reads the toggled half
        self.ativo = ["true"] * 29 + ["false"] * 3 + ["false"] * 29 + ["true"] * 3
        # CPF: the 9 base digits are hi (4) lo (4) region (1); weighted digit
        # sums of each 4-digit half for both check digits, and their text
        # ("123.4" + "56.78" + "9" + "-" + "09" = "123.456.789-09").
        digits = [(k // 1000, k // 100 % 10, k // 10 % 10, k % 10) for k in range(10000)]

        def weighted(weights: tuple[int, ...]) -> list[int]:
            return [sum(d * w for d, w in zip(ds, weights, strict=True)) for ds in digits]

        # compact arrays: these are read at random, so keep them cache-sized
        self.cpf_w1 = (array("H", weighted((10, 9, 8, 7))), array("H", weighted((6, 5, 4, 3))))
        self.cpf_w2 = (array("H", weighted((11, 10, 9, 8))), array("H", weighted((7, 6, 5, 4))))
        self.cpf_hi = [f"{k // 10:03d}.{k % 10}" for k in range(10000)]
        self.cpf_lo = [f"{k // 100:02d}.{k % 100:02d}" for k in range(10000)]

    def _build_streets(self, city: _City, lo: int, hi: int) -> None:
        rnd = random.Random(f"lh360-demo-streets:{city.cidade}:{city.uf}")
        bairros = _CITY_BAIRROS.get(city.cidade)
        pool = bairros.split("|") if bairros else _GENERIC_BAIRROS
        types = _weighted(_STREET_TYPES, 100)
        seen: set[str] = set()
        while len(city.streets) < 64:
            logradouro = f"{rnd.choice(types)} {rnd.choice(_STREET_NAMES)}"
            bairro = rnd.choice(pool)
            key = logradouro + "/" + bairro
            if key in seen:
                continue
            seen.add(key)
            cep = f"{rnd.randint(lo, hi):05d}-{rnd.randrange(1000):03d}"
            head = '{"logradouro":"' + _check_json_safe(logradouro) + '","numero":"'
            rest = ',"bairro":"' + _check_json_safe(bairro) + '","cidade":"' + city.cidade + '","uf":"'
            tail = '","cep":"' + cep + '"}'
            # the part after the complement, with the UF in upper and in lower case
            city.streets.append((head, rest + city.uf + tail, rest + city.uf.lower() + tail))

    @staticmethod
    def _numeros(rnd: random.Random) -> list[str]:
        out = []
        for _ in range(2048):
            r = rnd.random()
            if r < 0.03:
                out.append("S/N")
            elif r < 0.15:
                out.append(str(rnd.randint(1, 99)))
            else:  # log-uniform: short numbers are commoner than long ones
                out.append(str(int(math.exp(rnd.uniform(math.log(10.0), math.log(5000.0))))))
        return out

    @staticmethod
    def _complementos(rnd: random.Random) -> list[str]:
        out = []
        for _ in range(256):
            r = rnd.random()
            if r < 0.55:
                out.append("null")
                continue
            if r < 0.75:
                text = f"Apto {rnd.randint(1, 25)}{rnd.randint(1, 8):02d}"
            elif r < 0.83:
                text = f"Bloco {rnd.choice('ABCDEF')} Apto {rnd.randint(1, 12)}0{rnd.randint(1, 4)}"
            elif r < 0.90:
                text = f"Casa {rnd.randint(1, 6)}"
            elif r < 0.94:
                text = f"Sala {rnd.randint(1, 30)}{rnd.randint(1, 20):02d}"
            elif r < 0.97:
                text = f"Quadra {rnd.randint(1, 40)} Lote {rnd.randint(1, 30)}"
            else:
                text = rnd.choice(("Fundos", "Loja 1", "Térreo", "Casa dos fundos"))
            out.append('"' + text + '"')
        return out

    @staticmethod
    def _tags(rnd: random.Random, weights: tuple[int, ...], segment: str) -> list[str]:
        """256 ``tags`` values (JSON), each followed by the ``segmento`` field."""
        counts = _weighted([(0, 28), (1, 36), (2, 24), (3, 12)], 256)
        out = []
        for n in counts:
            chosen: list[str] = []
            while len(chosen) < n:
                tag = rnd.choices(_TAGS, weights)[0]
                if tag not in chosen:
                    chosen.append(tag)
            chosen.sort(key=_TAGS.index)
            out.append("[" + ",".join(f'"{t}"' for t in chosen) + f'],"segmento":"{segment}"')
        rnd.shuffle(out)
        return out

    @staticmethod
    def _renda() -> tuple[list[int], list[int], list[int], list[int]]:
        """4,096 equal-probability income bins: a 4 % lump at exactly the minimum
        wage, then 1412 + a log-normal, capped at 80,000.  Per bin: the lowest
        whole reais, the bin's width in reais, the cents modulus (1 keeps
        ``.00``) and the segment (0 varejo, 1 alta_renda, 2 private)."""
        nd = NormalDist()
        mu, sigma, lump, size = math.log(2500.0), 0.95, 0.04, 4096

        def quantile(qq: float) -> float:
            x = (qq - lump) / (1 - lump)
            if x <= 0:
                return _MIN_WAGE
            if x >= 1:
                return _MAX_RENDA
            return min(_MAX_RENDA, _MIN_WAGE + math.exp(mu + sigma * nd.inv_cdf(x)))

        base, width, cents, seg = [], [], [], []
        for k in range(size):
            lo, hi = int(quantile(k / size)), int(quantile((k + 1) / size))
            fixed = lo == int(_MIN_WAGE) and hi == lo or lo >= int(_MAX_RENDA)
            base.append(lo)
            width.append(0 if fixed else max(0, min(hi, int(_MAX_RENDA) - 1) - lo))
            cents.append(1 if fixed else 100)
            seg.append(2 if lo >= _PRIVATE_FROM else 1 if lo >= _ALTA_RENDA_FROM else 0)
        return base, width, cents, seg


@lru_cache(maxsize=1)
def _static() -> _Static:
    return _Static()


@lru_cache(maxsize=8)
def _hash_tables(
    seed: int,
) -> tuple[tuple[list[int], ...], tuple[list[int], ...], tuple[array, ...]]:
    """Two independent tabulation hashes (3 x 12-bit characters, 384-bit output)
    and the round functions of a Feistel permutation of 0..10**8-1 (for CPFs)."""
    rnd = random.Random(f"lh360-demo:{seed}")
    per_id = tuple([rnd.getrandbits(384) for _ in range(4096)] for _ in range(3))
    per_pos = tuple([rnd.getrandbits(384) for _ in range(4096)] for _ in range(3))
    feistel = tuple(array("H", [rnd.randrange(10000) for _ in range(10000)]) for _ in range(3))
    return per_id, per_pos, feistel


# --------------------------------------------------------------------------
# Bad records
# --------------------------------------------------------------------------


def bad_positions(rows: int, seed: int = 42) -> dict[int, str]:
    """Row indices (0-based) of the deliberately bad records and their kind.

    About one per 1,000 rows, and at least one of each kind in ``BAD_KINDS``
    when ``rows >= 500`` (fewer, one per 100 rows, below that).
    """
    if rows >= 500:
        count = max(len(BAD_KINDS), rows // 1000)
    else:
        count = rows // 100
    if count <= 0:
        return {}
    rnd = random.Random(f"lh360-demo-bad:{seed}:{rows}")
    first_kind = rnd.randrange(len(BAD_KINDS))
    out: dict[int, str] = {}
    for k in range(count):
        lo = k * rows // count
        hi = (k + 1) * rows // count
        out[lo + rnd.randrange(hi - lo)] = BAD_KINDS[(first_kind + k) % len(BAD_KINDS)]
    return out


def _make_bad(line: str, kind: str, variant: int) -> str:
    if kind == "malformed_json":
        return line[: len(line) * 3 // 5]
    if kind == "wrong_type":
        if variant:
            end = line.index(",", 6)
            return line[:6] + '"' + line[6:end] + 'a"' + line[end:]
        start = line.index('"renda_mensal":') + 15
        end = line.index(",", start)
        return line[:start] + '"abc"' + line[end:]
    if kind == "unknown_field":
        return line[:-1] + ',"campo_legado":"x"}'
    if kind == "cpf_wrong_length":
        start = line.index('"cpf":"') + 7
        return line[: start + 10] + line[start + 14 :]
    if kind == "email_without_at":
        return line.replace("@", ".", 1)
    if kind == "invalid_uf":
        start = line.index('"uf":"') + 6
        return line[:start] + "XX" + line[start + 2 :]
    raise ValueError(f"unknown bad kind {kind!r}")


# --------------------------------------------------------------------------
# The renderer
# --------------------------------------------------------------------------


def _normalize_start(start: datetime | None) -> datetime:
    if start is None:
        start = DEFAULT_START
    if start.tzinfo is None:
        start = start.replace(tzinfo=BRT)
    return start.astimezone(BRT).replace(microsecond=0)


def _make_renderer(rows: int, seed: int, start: datetime | None, span: timedelta, bad: bool) -> Callable[[int], str]:
    """Return ``line(i)``: the NDJSON text of record ``i`` of this stream."""
    if rows < 0:
        raise ValueError("rows must be >= 0")
    if rows >= 1 << 36:
        raise ValueError("rows must be < 2**36")
    span_s = int(span.total_seconds())
    if span_s < 1:
        raise ValueError("span must be at least one second")
    st = _static()
    (ta0, ta1, ta2), (tb0, tb1, tb2), (fa, fb, fc) = _hash_tables(seed)
    start = _normalize_start(start)
    base_ord = start.toordinal()
    base_sod = start.hour * 3600 + start.minute * 60 + start.second
    d2 = st.d2
    w1h, w1l = st.cpf_w1
    w2h, w2l = st.cpf_w2
    cpf_hi, cpf_lo = st.cpf_hi, st.cpf_lo
    phone_a, phone_b, ativo_tbl = st.phone_a, st.phone_b, st.ativo
    city_table, by_uf = st.city_table, st.by_uf
    first_tbl, middle_tbl, surnames = st.first, st.middle, st.surnames
    domains, domains_pj, canais, ages = st.domains, st.domains_pj, st.canais, st.ages
    numeros, complementos, tags_tbl = st.numeros, st.complementos, st.tags
    renda_base, renda_width, renda_cents, renda_seg = st.renda_base, st.renda_width, st.renda_cents, st.renda_seg
    month_days = st.month_days
    years = [str(start.year - k) for k in range(120)]
    warm = max(1, rows // 10)  # initial load: all new ids, no updates
    rows1024 = max(rows, 1) * 1024
    cpf_offset = (ta0[7] ^ tb1[11]) % 100_000_000
    # updates never target a row that is (or would be, with bad=True) broken,
    # so bad=True changes exactly the announced lines and nothing else
    avoid = bad_positions(rows, seed)
    bad_at = avoid if bad else {}
    lag = rows // span_s + 2  # rows per second of timeline, plus margin

    day_cache: dict[int, str] = {}
    last = [-1, ""]  # the most recent updated_at offset and its text
    blk = [-1, 0]  # the most recent block and its update slot

    def day_str(ordinal: int) -> str:
        text = day_cache.get(ordinal)
        if text is None:
            text = day_cache[ordinal] = date.fromordinal(ordinal).isoformat()
        return text

    def fmt(off: int) -> str:
        """ISO-8601 text of ``start + off`` seconds, in -03:00."""
        tot = base_sod + off
        sod = tot % 86400
        return f"{day_str(base_ord + tot // 86400)}T{d2[sod // 3600]}:{d2[sod // 60 % 60]}:{d2[sod % 60]}-03:00"

    def ts_off(i: int) -> int:
        q = tb0[i & 4095] ^ tb1[(i >> 12) & 4095] ^ tb2[i >> 24]
        return ((i * 1024 + ((q >> 264) & 1023)) * span_s) // rows1024

    def block_update_offset(b: int) -> int:
        q = tb0[b & 4095] ^ tb1[(b >> 12) & 4095] ^ tb2[b >> 24]
        return ((q >> 312) & 0xFFFF) % 10

    def pos_of(ident: int) -> int:
        if ident <= warm:
            return ident - 1
        b, r = divmod(ident - warm - 1, 9)
        u = block_update_offset(b)
        return warm + b * 10 + (r if r < u else r + 1)

    def line(i: int) -> str:
        """Record ``i``.  Each id has a pool ``p`` and each row a pool ``q`` of
        48 random bytes (``pb``/``qb``).  Byte layout: 0 gender/quirks,
        1 first name, 2 middle name, 3-6 surnames, uf case (6), 7-8 age, pj (8),
        9-10 day of year, canal (10), 11-12 city, 13 street + move flag,
        14-15 number, ativo (15), 16 complement, 17-20 phone, e-mail pattern
        (18), 21-22 + 42-43 income, 23 tags, 24-27 e-mail, 28-32 created_at.
        Row pools: 33-34 jitter, 35-37 update target, 38 update flags, 39-40
        the block's update slot, 41 same-UF move.  An update reads the facets
        in ``mask`` (1 income, 2 e-mail, 4 ativo, 8 address) from ``qb``.
        """
        if not 0 <= i < rows:
            raise IndexError(i)
        q = tb0[i & 4095] ^ tb1[(i >> 12) & 4095] ^ tb2[i >> 24]
        off_i = ((i * 1024 + ((q >> 264) & 1023)) * span_s) // rows1024
        if off_i == last[0]:
            upd = last[1]
        else:
            upd = last[1] = fmt(off_i)
            last[0] = off_i
        mask = 0
        if i < warm:
            ident = i + 1
            created = ""
        else:
            b, off = divmod(i - warm, 10)
            if b == blk[0]:
                u = blk[1]
            else:
                u = blk[1] = block_update_offset(b)
                blk[0] = b
            if off != u:
                ident = warm + b * 9 + (off if off < u else off - 1) + 1
                created = upd
            else:  # an UPDATE of an earlier id
                qb = q.to_bytes(48, "little")
                avail = warm + b * 9 + u  # ids handed out before this row
                pick = qb[35] | qb[36] << 8 | qb[37] << 16
                if qb[38] & 1:  # a recent customer
                    ident = avail - lag - pick % min(avail, 5000)
                else:
                    ident = 1 + pick % avail
                ident = chosen = max(1, min(ident, avail))
                while ident >= 1:  # skip bad originals and same-second ones
                    tpos = pos_of(ident)
                    if tpos not in avoid and ts_off(tpos) < off_i:
                        break
                    ident -= 1
                if ident < 1:
                    ident = chosen
                # facets: income 50 %, e-mail 25 %, ativo (toggled) 12.5 %,
                # address 25 % (within the UF); at least one of them
                x = qb[38]
                mask = (x >> 1) & 1 | (2 if (x >> 2) & 7 < 2 else 0) | (4 if x >> 5 == 0 else 0)
                mask = mask | (8 if qb[34] & 12 == 0 else 0) or 1
                created = "" if ident <= warm else fmt(ts_off(pos_of(ident)))
        pb = (ta0[ident & 4095] ^ ta1[(ident >> 12) & 4095] ^ ta2[ident >> 24]).to_bytes(48, "little")
        # -- name ----------------------------------------------------------
        g = pb[0] & 1
        first, first_a = first_tbl[g][pb[1]]
        middle, middle_a = middle_tbl[g][pb[2] & 127]
        x = pb[4]
        s1, s1p, s1a = surnames[pb[3] | (x & 3) << 8]
        s2, s2p, s2a = surnames[pb[5] | (pb[6] & 3) << 8]
        if x & 48 and s1 != s2:
            surname = f"{s1p if x & 12 == 0 else s1} {s2p if x & 192 == 0 else s2}"
            last_a = s2a
        else:
            surname = s1p if x & 8 == 0 else s1  # "da Silva" vs "Silva"
            last_a = s1a
        nome = f"{first} {middle} {surname}" if middle else f"{first} {surname}"
        quirk = pb[0] >> 2
        if quirk < 6:
            if quirk < 2:
                nome = nome.lower()
            elif quirk == 2:
                nome = nome.upper()
            elif quirk == 3:
                nome = f"  {nome} "
            elif quirk == 4:
                nome = nome + "   "
            else:
                nome = nome.replace(" ", "  ", 1)
        # -- birth: born in year start-age-1, so 18 <= age on start <= 90 -----
        age = ages[pb[7] | (pb[8] & 3) << 8]
        birth_year = years[age + 1]
        # -- address -------------------------------------------------------
        city = city_table[pb[11] | (pb[12] & 31) << 8]
        if mask & 8:
            ab = qb
            if qb[13] & 128:  # moved to another city of the same UF
                street = by_uf[city.uf][qb[41]].streets[qb[13] & 63]
            else:
                street = city.streets[qb[13] & 63]
        else:
            ab = pb
            street = city.streets[pb[13] & 63]
        # -- cpf: the id mapped 1:1 onto 8 digits (3 Feistel rounds) + region
        hi, lo = divmod((ident + cpf_offset) % 100_000_000, 10000)
        hi, lo = lo, (hi + fa[lo]) % 10000
        hi, lo = lo, (hi + fb[lo]) % 10000
        hi, lo = lo, (hi + fc[lo]) % 10000
        reg = city.region
        c1 = (w1h[hi] + w1l[lo] + 2 * reg) * 10 % 11 % 10
        c2 = (w2h[hi] + w2l[lo] + 3 * reg + 2 * c1) * 10 % 11 % 10
        # -- money, segment ------------------------------------------------
        rb = qb if mask & 1 else pb
        ridx = rb[21] | (rb[22] & 15) << 8  # income bin; 42 spreads within it, 43 cents
        renda = f"{renda_base[ridx] + (rb[42] * renda_width[ridx] >> 8)}.{d2[(rb[43] >> 1) % renda_cents[ridx]]}"
        seg = renda_seg[ridx]
        if seg == 0 and (pb[8] >> 2) & 31 < 3:
            seg = 3
        # -- e-mail --------------------------------------------------------
        eb = qb if mask & 2 else pb
        pat = eb[18] >> 4
        if pat < 5:
            local = f"{first_a}.{last_a}"
        elif pat < 7:
            local = f"{first_a}{last_a}"
        elif pat == 7:
            local = f"{first_a}_{last_a}"
        elif pat < 10:
            local = f"{first_a}.{last_a}{d2[eb[24] & 63]}"
        elif pat == 10:
            local = f"{first_a}.{last_a}{birth_year[2:]}"
        elif pat == 11 and middle_a:
            local = f"{first_a}.{middle_a}.{last_a}"
        elif pat == 12:
            local = f"{last_a}.{first_a}"
        elif pat == 13:
            local = f"{first_a[0]}{last_a}{eb[25] | (eb[26] & 3) << 8}"
        else:
            local = f"{first_a}.{s1a}"
        dom = (domains_pj if seg == 3 else domains)[eb[26] >> 2]
        casing = eb[27] & 31
        if casing < 3:
            if casing < 2:
                local = local.title()
            else:
                local, dom = local.upper(), dom.upper()
        if not created:  # initial load: a customer since up to 15 years ago
            back = 1 + (pb[28] | pb[29] << 8) % max(1, min(5475, (age - 18) * 365))
            tod = (pb[30] | pb[31] << 8 | (pb[32] & 1) << 16) % 86400
            created = fmt(-back * 86400 + tod - base_sod)
        text = (
            f'{{"id":{ident},"cpf":"{cpf_hi[hi]}{cpf_lo[lo]}{reg}-{d2[c1 * 10 + c2]}",'
            f'"nome":"{nome}","email":"{local}@{dom}","telefone":"{city.tel}'
            f'{phone_a[pb[17] | (pb[18] & 15) << 8]}-{phone_b[pb[19] | (pb[20] & 63) << 8]}",'
            f'"data_nascimento":"{birth_year}-{month_days[(pb[9] | (pb[10] & 1) << 8) % 365]}",'
            f'"endereco":{street[0]}{numeros[ab[14] | (ab[15] & 7) << 8]}'
            f'","complemento":{complementos[ab[16]]}{street[1 + (pb[6] < 8)]},'
            f'"renda_mensal":{renda},"ativo":{ativo_tbl[pb[15] >> 3 ^ (mask & 4) << 3]},'
            f'"tags":{tags_tbl[seg][pb[23]]},"canal_origem":"{canais[(pb[10] >> 1) & 15]}",'
            f'"created_at":"{created}","updated_at":"{upd}"}}'
        )
        if i in bad_at:
            text = _make_bad(text, bad_at[i], (q >> 276) & 1)
        return text

    return line


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------


def generate_records(
    rows: int,
    seed: int = 42,
    *,
    start: datetime | None = None,
    bad: bool = True,
    span: timedelta = DEFAULT_SPAN,
) -> Iterator[str]:
    """Yield ``rows`` NDJSON lines (without newline) of the ``clientes`` stream.

    ``updated_at`` runs from ``start`` (default 2025-11-24T06:00:00-03:00; a
    naive datetime is read as -03:00 wall time) to ``start + span``.
    """
    line = _make_renderer(rows, seed, start, span, bad)  # validates eagerly
    return map(line, range(rows))


def record_line(
    i: int,
    rows: int,
    seed: int = 42,
    *,
    start: datetime | None = None,
    bad: bool = True,
    span: timedelta = DEFAULT_SPAN,
) -> str:
    """Line ``i`` of ``generate_records(rows, seed, ...)``, computed on its own."""
    return _make_renderer(rows, seed, start, span, bad)(i)


def file_mtimes(files: int, *, start: datetime | None = None, span: timedelta = DEFAULT_SPAN) -> list[datetime]:
    """The mtimes ``write_landing`` gives its files: file k (0-based) gets
    ``start + (k + 1) * span / files`` (whole seconds, strictly increasing), so
    it is never older than the newest ``updated_at`` inside it."""
    begin = _normalize_start(start)
    span_s = int(span.total_seconds())
    out: list[datetime] = []
    prev = -1
    for k in range(files):
        off = max(prev + 1, -(-(k + 1) * span_s // files))
        out.append(begin + timedelta(seconds=off))
        prev = off
    return out


@lru_cache(maxsize=2)
def _cached_renderer(rows: int, seed: int, start: datetime | None, span: timedelta, bad: bool) -> Callable[[int], str]:
    return _make_renderer(rows, seed, start, span, bad)


def _write_file(
    directory: Path,
    k: int,
    rows: int,
    files: int,
    seed: int,
    start: datetime | None,
    span: timedelta,
    bad: bool,
    gzip_every: int,
    fsync: bool,
) -> Path:
    """Write landing file ``k`` (0-based) atomically; return its final path."""
    line = _cached_renderer(rows, seed, start, span, bad)
    mtime = file_mtimes(files, start=start, span=span)[k]
    lo, hi = k * rows // files, (k + 1) * rows // files
    gz = gzip_every > 0 and (k + 1) % gzip_every == 0
    name = f"clientes_{k + 1:06d}.json"
    folder = directory / f"{mtime.year:04d}/{mtime.month:02d}/{mtime.day:02d}"
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / (name + ".gz" if gz else name)
    tmp = folder / f".{final.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    stamp = int(mtime.timestamp())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as raw:
            # the gzip header carries the final name and mtime: byte-for-byte stable
            out = (
                gzip.GzipFile(filename=final.name, mode="wb", fileobj=raw, mtime=stamp, compresslevel=6) if gz else raw
            )
            for a in range(lo, hi, 8192):
                text = "\n".join(map(line, range(a, min(hi, a + 8192))))
                out.write((text + "\n").encode("utf-8"))
            if gz:
                out.close()
            if fsync:
                raw.flush()
                os.fsync(raw.fileno())
        os.utime(tmp, (stamp, stamp))
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return final


def write_landing(
    directory: Path,
    rows: int = 5000,
    files: int = 10,
    seed: int = 42,
    *,
    start: datetime | None = None,
    bad: bool = True,
    gzip_every: int = 0,
    span: timedelta = DEFAULT_SPAN,
    workers: int = 1,
    fsync: bool = False,
) -> list[Path]:
    """Write the stream as ``files`` NDJSON files under ``directory``.

    File k (1-based) is ``YYYY/MM/DD/clientes_<k:06d>.json`` (``.json.gz`` when
    ``gzip_every > 0`` and k is a multiple of it), the date being that of the
    file's mtime (see ``file_mtimes``) in -03:00.  Rows are split evenly (file
    k holds rows ``(k-1)*rows//files`` up to ``k*rows//files``; with more files
    than rows some files are empty).  Each file is written to a hidden
    temporary name (``.clientes_…tmp``) in its folder, given its mtime, then
    renamed into place, so a reader never sees a partial file; ``fsync=True``
    also flushes it to disk first (slower, survives power loss).  The
    concatenated lines equal ``generate_records`` with the same arguments.
    ``workers > 1`` writes files in that many forked processes (same bytes);
    it falls back to one process when the caller runs other threads or the
    platform cannot fork.
    Returns the paths in file order.
    """
    if files < 1:
        raise ValueError("files must be >= 1")
    if gzip_every < 0:
        raise ValueError("gzip_every must be >= 0")
    directory = Path(directory)
    _make_renderer(rows, seed, start, span, bad)  # validate before writing anything
    args = (rows, files, seed, start, span, bad, gzip_every, fsync)
    import multiprocessing
    import threading

    # Forking is only safe from a single-threaded process (and, unlike spawn,
    # it does not re-import the caller's __main__); otherwise write serially.
    if (
        workers <= 1
        or files == 1
        or threading.active_count() > 1
        or "fork" not in multiprocessing.get_all_start_methods()
    ):
        return [_write_file(directory, k, *args) for k in range(files)]
    from concurrent.futures import ProcessPoolExecutor

    _static(), _hash_tables(seed)  # built once here, inherited by the workers
    ctx = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=min(workers, files), mp_context=ctx) as pool:
        futures = [pool.submit(_write_file, directory, k, *args) for k in range(files)]
        return [f.result() for f in futures]
