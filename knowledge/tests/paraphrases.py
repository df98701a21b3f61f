# ruff: noqa: E501  (test data: one fact per line reads best)
"""A small retrieval evaluation set: one business's facts in English, Spanish and Portuguese, and for each
fact questions a customer might ask in that language, worded away from the fact's own words (synonyms,
other constructions). Used by test_retrieval.py and by benchmarks/knowledge.py (which prints each
method's accuracy per language). Not tuned to the retriever: written before it was measured."""

from __future__ import annotations

FACTS = {
    "en": {
        "hours": (
            "Opening hours",
            "We are open Monday to Friday from 9:00 to 18:00 and on Saturdays from 10:00 to 14:00. We are closed on Sundays and public holidays.",
        ),
        "shipping": (
            "Shipping",
            "Orders ship within 2 business days. Delivery within the country costs 5 euros and is free for orders over 60 euros.",
        ),
        "returns": (
            "Returns",
            "You can return any unused product within 30 days of receiving it for a full refund. Bring the receipt.",
        ),
        "payment": (
            "Payment",
            "We accept Visa, Mastercard, PayPal and cash in the store. We do not accept cheques.",
        ),
        "repairs": (
            "Repairs",
            "A standard tune-up costs 35 euros and takes about two days. Fixing a flat tyre costs 10 euros while you wait.",
        ),
        "warranty": (
            "Warranty",
            "New bicycles come with a two-year warranty on the frame and one year on components.",
        ),
        "location": (
            "Location",
            "The store is at 12 Harbour Street, next to the central station. Customers park for free in the garage behind the building.",
        ),
        "rental": (
            "Rental",
            "Bikes can be rented for 15 euros per day or 60 euros per week; a deposit of 100 euros is required.",
        ),
    },
    "es": {
        "hours": (
            "Horario",
            "Abrimos de lunes a viernes de 9:00 a 18:00 y los sábados de 10:00 a 14:00. Cerramos los domingos y festivos.",
        ),
        "shipping": (
            "Envíos",
            "Los pedidos se envían en 2 días hábiles. La entrega nacional cuesta 5 euros y es gratuita en pedidos de más de 60 euros.",
        ),
        "returns": (
            "Devoluciones",
            "Puede devolver cualquier producto sin usar en un plazo de 30 días desde que lo recibe y le reembolsamos el importe completo. Traiga el ticket.",
        ),
        "payment": (
            "Pagos",
            "Aceptamos Visa, Mastercard, PayPal y efectivo en la tienda. No aceptamos cheques.",
        ),
        "repairs": (
            "Reparaciones",
            "Una puesta a punto estándar cuesta 35 euros y tarda unos dos días. Arreglar un pinchazo cuesta 10 euros en el momento.",
        ),
        "warranty": (
            "Garantía",
            "Las bicicletas nuevas tienen dos años de garantía en el cuadro y un año en los componentes.",
        ),
        "location": (
            "Ubicación",
            "La tienda está en la calle del Puerto 12, junto a la estación central. Los clientes aparcan gratis en el garaje detrás del edificio.",
        ),
        "rental": (
            "Alquiler",
            "Se pueden alquilar bicicletas por 15 euros al día o 60 euros a la semana; se pide una fianza de 100 euros.",
        ),
    },
    "pt": {
        "hours": (
            "Horário",
            "Estamos abertos de segunda a sexta das 9:00 às 18:00 e aos sábados das 10:00 às 14:00. Fechamos aos domingos e feriados.",
        ),
        "shipping": (
            "Envios",
            "As encomendas são enviadas em 2 dias úteis. A entrega nacional custa 5 euros e é grátis em encomendas acima de 60 euros.",
        ),
        "returns": (
            "Devoluções",
            "Pode devolver qualquer produto não usado no prazo de 30 dias após o receber e devolvemos o valor total. Traga o recibo.",
        ),
        "payment": (
            "Pagamentos",
            "Aceitamos Visa, Mastercard, PayPal e dinheiro na loja. Não aceitamos cheques.",
        ),
        "repairs": (
            "Reparações",
            "Uma revisão padrão custa 35 euros e demora cerca de dois dias. Reparar um furo custa 10 euros na hora.",
        ),
        "warranty": (
            "Garantia",
            "As bicicletas novas têm dois anos de garantia no quadro e um ano nos componentes.",
        ),
        "location": (
            "Localização",
            "A loja fica na Rua do Porto 12, ao lado da estação central. Os clientes estacionam de graça na garagem atrás do edifício.",
        ),
        "rental": (
            "Aluguer",
            "É possível alugar bicicletas por 15 euros por dia ou 60 euros por semana; é pedida uma caução de 100 euros.",
        ),
    },
}

QUESTIONS = {
    "en": [
        ("When can I come by the shop?", "hours"),
        ("Are you working on a Sunday?", "hours"),
        ("How much do you charge to send my order?", "shipping"),
        ("How long until my package goes out?", "shipping"),
        ("I changed my mind about something I bought, can I get my money back?", "returns"),
        ("Can I pay by credit card?", "payment"),
        ("What's the price to service my bike?", "repairs"),
        ("My tire is punctured, can you help?", "repairs"),
        ("How long is the guarantee on a new bike?", "warranty"),
        ("Where are you?", "location"),
        ("Is there somewhere to leave my car?", "location"),
        ("Can I hire a bicycle for a few days?", "rental"),
    ],
    "es": [
        ("¿Cuándo puedo pasar por la tienda?", "hours"),
        ("¿Trabajan el domingo?", "hours"),
        ("¿Cuánto me cobran por mandar mi compra?", "shipping"),
        ("¿En cuánto tiempo sale mi paquete?", "shipping"),
        ("Me arrepentí de una compra, ¿me devuelven el dinero?", "returns"),
        ("¿Puedo pagar con tarjeta de crédito?", "payment"),
        ("¿Cuánto vale revisar mi bici?", "repairs"),
        ("Tengo una rueda pinchada, ¿me ayudan?", "repairs"),
        ("¿Cuánto dura la garantía de una bici nueva?", "warranty"),
        ("¿Dónde están?", "location"),
        ("¿Hay sitio para dejar el coche?", "location"),
        ("¿Puedo coger una bici prestada unos días pagando?", "rental"),
    ],
    "pt": [
        ("Quando posso passar na loja?", "hours"),
        ("Vocês trabalham ao domingo?", "hours"),
        ("Quanto cobram para mandar a minha compra?", "shipping"),
        ("Quanto tempo até o meu pacote sair?", "shipping"),
        ("Arrependi-me de uma compra, devolvem o dinheiro?", "returns"),
        ("Posso pagar com cartão de crédito?", "payment"),
        ("Quanto custa fazer a manutenção da minha bicicleta?", "repairs"),
        ("O meu pneu furou, podem ajudar?", "repairs"),
        ("Quanto tempo dura a garantia de uma bicicleta nova?", "warranty"),
        ("Onde ficam?", "location"),
        ("Há lugar para deixar o carro?", "location"),
        ("Posso levar uma bicicleta uns dias pagando?", "rental"),
    ],
}

# Questions the knowledge cannot answer: their best score should stay under the handoff threshold.
UNANSWERABLE = {
    "en": [
        "Do you sell car insurance?",
        "What is the capital of Australia?",
        "Can you book me a flight to Rome?",
    ],
    "es": ["¿Venden seguros de coche?", "¿Cuál es la capital de Australia?", "¿Me reservan un vuelo a Roma?"],
    "pt": [
        "Vendem seguros de carro?",
        "Qual é a capital da Austrália?",
        "Podem reservar-me um voo para Roma?",
    ],
}
