"""A tiny stock ledger: item name -> quantity on hand."""


class OutOfStock(Exception):
    pass


def add_item(stock: dict[str, int], item: str, quantity: int) -> None:
    if quantity <= 0:
        raise ValueError("quantity must be positive")
    stock[item] = stock.get(item, 0) + quantity


def remove_item(stock: dict[str, int], item: str, quantity: int) -> None:
    if stock.get(item, 0) < quantity:
        raise OutOfStock(item)
    stock[item] -= quantity
