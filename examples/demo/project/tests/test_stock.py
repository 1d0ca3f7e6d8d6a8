import pytest
from inventory.stock import OutOfStock, add_item, remove_item


def test_add_then_remove():
    stock = {}
    add_item(stock, "bolt", 5)
    remove_item(stock, "bolt", 2)
    assert stock == {"bolt": 3}


def test_cannot_remove_more_than_on_hand():
    stock = {"bolt": 1}
    with pytest.raises(OutOfStock):
        remove_item(stock, "bolt", 2)
    assert stock == {"bolt": 1}
