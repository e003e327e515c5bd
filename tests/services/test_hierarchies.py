from datetime import date

import pytest

from billfold.core.db import transaction
from billfold.core.errors import ValidationFailed
from billfold.customers import accounts
from tests.services.conftest import fields_of


class TestResponsibleAccount:
    @pytest.fixture
    def desk(self, make_desk):
        return make_desk(enable_responsible_account_management=True)

    def test_makes_an_account_the_managed_account_of_another(self, desk):
        payer = desk.new_account("Acme Holdings")

        managed = desk.new_account("Acme Brick", responsible_account_id=payer.id)

        assert managed.responsible_account_id == payer.id
        assert accounts.managed_count(desk.session, payer.id) == 1

    def test_makes_an_existing_account_managed(self, desk):
        payer = desk.new_account("Acme Holdings")
        account = desk.new_account("Acme Brick")

        account = desk.update_account(account, responsible_account_id=payer.id)

        assert account.responsible_account_id == payer.id

    def test_refuses_a_responsible_account_without_the_setting(self, make_desk):
        desk = make_desk()
        payer = desk.new_account("Acme Holdings")

        with pytest.raises(ValidationFailed) as refused:
            desk.new_account("Acme Brick", responsible_account_id=payer.id)

        assert fields_of(refused.value) == ["billing_account.responsible_account_id"]

    def test_refuses_a_responsible_account_of_another_tenant(self, desk, make_desk):
        other = make_desk(enable_responsible_account_management=True)
        stranger = other.new_account("Other Biller's Customer")
        account = desk.new_account("Acme Brick")

        with pytest.raises(ValidationFailed) as refused:
            desk.update_account(account, responsible_account_id=stranger.id)

        assert fields_of(refused.value) == ["responsible_account_id"]
        assert refused.value.errors[0].code == "not_found"

    def test_refuses_a_responsible_account_on_another_bill_cycle(self, desk):
        weekly = desk.bill_cycle("Weekly", frequency="weekly", bill_day=1)
        payer = desk.new_account("Acme Holdings", bill_cycle_id=weekly.id)

        with pytest.raises(ValidationFailed) as refused:
            desk.new_account("Acme Brick", responsible_account_id=payer.id)

        assert fields_of(refused.value) == ["billing_account.responsible_account_id"]

    @pytest.mark.parametrize("status", ["suspended", "deactivated"])
    def test_refuses_a_responsible_account_that_is_not_active(self, desk, status):
        payer = desk.new_account("Acme Holdings")
        desk.update_account(payer, status=status)

        with pytest.raises(ValidationFailed) as refused:
            desk.new_account("Acme Brick", responsible_account_id=payer.id)

        assert fields_of(refused.value) == ["billing_account.responsible_account_id"]

    def test_refuses_an_account_responsible_for_itself(self, desk):
        account = desk.new_account()

        with pytest.raises(ValidationFailed) as refused:
            desk.update_account(account, responsible_account_id=account.id)

        assert fields_of(refused.value) == ["responsible_account_id"]

    def test_refuses_a_responsible_account_that_is_itself_managed(self, desk):
        payer = desk.new_account("Acme Holdings")
        managed = desk.new_account("Acme Brick", responsible_account_id=payer.id)

        with pytest.raises(ValidationFailed) as refused:
            desk.new_account("Acme Tile", responsible_account_id=managed.id)

        assert fields_of(refused.value) == ["billing_account.responsible_account_id"]

    def test_refuses_making_an_account_with_managed_accounts_managed(self, desk):
        payer = desk.new_account("Acme Holdings")
        desk.new_account("Acme Brick", responsible_account_id=payer.id)
        other_payer = desk.new_account("Zenith Group")

        with pytest.raises(ValidationFailed) as refused:
            desk.update_account(payer, responsible_account_id=other_payer.id)

        assert fields_of(refused.value) == ["responsible_account_id"]

    def test_refuses_moving_a_responsible_account_to_another_bill_cycle(self, desk):
        payer = desk.new_account("Acme Holdings")
        desk.new_account("Acme Brick", responsible_account_id=payer.id)
        weekly = desk.bill_cycle("Weekly", frequency="weekly", bill_day=1)

        with pytest.raises(ValidationFailed) as refused:
            desk.update_account(payer, bill_cycle_id=weekly.id)

        assert fields_of(refused.value) == ["bill_cycle_id"]


class TestDeactivateResponsibleAccount:
    @pytest.fixture
    def desk(self, make_desk):
        return make_desk(enable_responsible_account_management=True)

    def test_refuses_deactivating_an_account_with_managed_accounts(self, desk):
        payer = desk.new_account("Acme Holdings")
        desk.new_account("Acme Brick", responsible_account_id=payer.id)

        with pytest.raises(ValidationFailed) as refused:
            desk.update_account(payer, status="deactivated")

        assert fields_of(refused.value) == ["status"]
        assert desk.reload(payer).status == "active"

    def test_deactivates_it_once_its_managed_accounts_are_moved_away(self, desk):
        payer = desk.new_account("Acme Holdings")
        managed = desk.new_account("Acme Brick", responsible_account_id=payer.id)
        desk.update_account(managed, responsible_account_id=None)

        assert desk.update_account(payer, status="deactivated").status == "deactivated"

    def test_set_status_refuses_deactivating_an_account_with_managed_accounts(self, desk):
        payer = desk.new_account("Acme Holdings")
        desk.new_account("Acme Brick", responsible_account_id=payer.id)

        with pytest.raises(ValidationFailed) as refused, transaction(desk.session):
            accounts.set_status(desk.session, payer, "deactivated")

        assert fields_of(refused.value) == ["status"]
        assert desk.reload(payer).status == "active"


class TestInvoiceRenderingType:
    @pytest.fixture
    def desk(self, make_desk):
        return make_desk(enable_responsible_account_management=True)

    def test_is_set_on_an_account_with_managed_accounts(self, desk):
        payer = desk.new_account("Acme Holdings")
        desk.new_account("Acme Brick", responsible_account_id=payer.id)

        payer = desk.update_account(payer, invoice_rendering_type="aggregated")

        assert payer.invoice_rendering_type == "aggregated"

    def test_refuses_it_on_an_account_without_managed_accounts(self, desk):
        account = desk.new_account()

        with pytest.raises(ValidationFailed) as refused:
            desk.update_account(account, invoice_rendering_type="per_account")

        assert fields_of(refused.value) == ["invoice_rendering_type"]

    def test_refuses_it_on_a_new_account(self, desk):
        with pytest.raises(ValidationFailed) as refused:
            desk.new_account(invoice_rendering_type="aggregated")

        assert fields_of(refused.value) == ["billing_account.invoice_rendering_type"]

    def test_refuses_an_unknown_rendering_type(self, desk):
        payer = desk.new_account("Acme Holdings")
        desk.new_account("Acme Brick", responsible_account_id=payer.id)

        with pytest.raises(ValidationFailed) as refused:
            desk.update_account(payer, invoice_rendering_type="stapled")

        assert fields_of(refused.value) == ["invoice_rendering_type"]


class TestParentAccount:
    @pytest.fixture
    def desk(self, make_desk):
        return make_desk(enable_account_hierarchy_management=True)

    def test_makes_an_account_the_child_of_another(self, desk):
        parent = desk.new_account("Acme Holdings")

        child = desk.new_account("Acme Brick", parent_account_id=parent.id)

        assert child.parent_account_id == parent.id

    def test_refuses_a_parent_without_the_setting(self, make_desk):
        desk = make_desk()
        parent = desk.new_account("Acme Holdings")

        with pytest.raises(ValidationFailed) as refused:
            desk.new_account("Acme Brick", parent_account_id=parent.id)

        assert fields_of(refused.value) == ["billing_account.parent_account_id"]

    @pytest.mark.parametrize("status", ["suspended", "pending_collection"])
    def test_accepts_a_suspended_or_pending_collection_parent(self, desk, status):
        parent = desk.new_account("Acme Holdings")
        with transaction(desk.session):
            if status == "pending_collection":
                accounts.set_status(desk.session, parent, status, by_collections=True)
            else:
                accounts.set_status(desk.session, parent, status)

        child = desk.new_account("Acme Brick", parent_account_id=parent.id)

        assert child.parent_account_id == parent.id

    def test_refuses_a_deactivated_parent(self, desk):
        parent = desk.new_account("Acme Holdings")
        desk.update_account(parent, status="deactivated")

        with pytest.raises(ValidationFailed) as refused:
            desk.new_account("Acme Brick", parent_account_id=parent.id)

        assert fields_of(refused.value) == ["billing_account.parent_account_id"]

    def test_refuses_an_account_as_its_own_parent(self, desk):
        account = desk.new_account()

        with pytest.raises(ValidationFailed) as refused:
            desk.update_account(account, parent_account_id=account.id)

        assert fields_of(refused.value) == ["parent_account_id"]

    def test_refuses_a_cycle_through_a_grandchild(self, desk):
        a = desk.new_account("A Corp")
        b = desk.new_account("B Corp", parent_account_id=a.id)
        c = desk.new_account("C Corp", parent_account_id=b.id)

        with pytest.raises(ValidationFailed) as refused:
            desk.update_account(a, parent_account_id=c.id)

        assert fields_of(refused.value) == ["parent_account_id"]
        assert desk.reload(a).parent_account_id is None

    def test_refuses_a_cycle_through_a_child(self, desk):
        a = desk.new_account("A Corp")
        b = desk.new_account("B Corp", parent_account_id=a.id)

        with pytest.raises(ValidationFailed) as refused:
            desk.update_account(a, parent_account_id=b.id)

        assert fields_of(refused.value) == ["parent_account_id"]

    def test_moves_a_child_under_a_cousin(self, desk):
        a = desk.new_account("A Corp")
        b = desk.new_account("B Corp", parent_account_id=a.id)
        c = desk.new_account("C Corp", parent_account_id=a.id)

        assert desk.update_account(c, parent_account_id=b.id).parent_account_id == b.id

    def test_accepts_a_parent_on_another_bill_cycle_when_not_required_to_match(self, desk):
        weekly = desk.bill_cycle("Weekly", frequency="weekly", bill_day=1)
        parent = desk.new_account("Acme Holdings", bill_cycle_id=weekly.id)

        child = desk.new_account("Acme Brick", parent_account_id=parent.id)

        assert child.bill_cycle_id != parent.bill_cycle_id


class TestSameBillCycleHierarchy:
    @pytest.fixture
    def desk(self, make_desk):
        return make_desk(enable_account_hierarchy_management=True,
                         require_same_bill_cycle_for_account_hierarchy=True)

    def test_accepts_a_parent_on_the_same_bill_cycle(self, desk):
        parent = desk.new_account("Acme Holdings")

        child = desk.new_account("Acme Brick", parent_account_id=parent.id)

        assert child.bill_cycle_id == parent.bill_cycle_id

    def test_refuses_a_parent_on_another_bill_cycle(self, desk):
        weekly = desk.bill_cycle("Weekly", frequency="weekly", bill_day=1)
        parent = desk.new_account("Acme Holdings", bill_cycle_id=weekly.id)

        with pytest.raises(ValidationFailed) as refused:
            desk.new_account("Acme Brick", parent_account_id=parent.id)

        assert fields_of(refused.value) == ["billing_account.parent_account_id"]

    def test_refuses_moving_a_parent_to_another_bill_cycle(self, desk):
        parent = desk.new_account("Acme Holdings")
        desk.new_account("Acme Brick", parent_account_id=parent.id)
        quarterly = desk.bill_cycle("Quarterly", frequency="quarterly",
                                    start_date=date(2026, 1, 1))

        with pytest.raises(ValidationFailed) as refused:
            desk.update_account(parent, bill_cycle_id=quarterly.id)

        assert fields_of(refused.value) == ["bill_cycle_id"]

    def test_refuses_moving_a_child_to_another_bill_cycle(self, desk):
        parent = desk.new_account("Acme Holdings")
        child = desk.new_account("Acme Brick", parent_account_id=parent.id)
        quarterly = desk.bill_cycle("Quarterly", frequency="quarterly")

        with pytest.raises(ValidationFailed) as refused:
            desk.update_account(child, bill_cycle_id=quarterly.id)

        assert fields_of(refused.value) == ["bill_cycle_id"]
