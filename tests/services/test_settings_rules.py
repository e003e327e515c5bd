import pytest

from billfold.core.errors import ValidationFailed
from billfold.core.scope import Scope
from billfold.tenants import service as tenants
from tests.services.conftest import fields_of


def settings_of(desk):
    desk.session.expire_all()
    return tenants.get_settings(desk.session, desk.scope)


class TestAllowMultiCustomerAccounts:
    def test_turns_off_while_every_customer_has_one_account(self, make_desk):
        desk = make_desk(allow_multi_customer_accounts=True)
        desk.create_customer()

        desk.configure(allow_multi_customer_accounts=False)

        assert settings_of(desk).allow_multi_customer_accounts is False

    def test_refuses_turning_off_while_a_customer_has_two_accounts(self, make_desk):
        desk = make_desk(allow_multi_customer_accounts=True)
        customer, _ = desk.create_customer()
        desk.add_account(customer)

        with pytest.raises(ValidationFailed) as refused:
            desk.configure(allow_multi_customer_accounts=False)

        assert fields_of(refused.value) == ["allow_multi_customer_accounts"]
        assert settings_of(desk).allow_multi_customer_accounts is True


class TestInvoiceDistributionOptions:
    def test_removes_an_option_no_account_uses(self, desk):
        desk.create_customer(account=desk.account(invoice_type="email"))

        desk.configure(invoice_distribution_options=["email"])

        assert settings_of(desk).invoice_distribution_options == ["email"]

    def test_refuses_removing_an_option_an_account_uses(self, desk):
        desk.create_customer(account=desk.account(invoice_type="email"))

        with pytest.raises(ValidationFailed) as refused:
            desk.configure(invoice_distribution_options=["none", "paper"])

        assert fields_of(refused.value) == ["invoice_distribution_options"]
        assert "email" in refused.value.errors[0].message
        assert settings_of(desk).invoice_distribution_options == ["none", "email"]

    def test_an_option_used_in_another_tenant_does_not_count(self, desk, make_desk):
        other = make_desk()
        other.create_customer(account=other.account(invoice_type="email"))

        desk.configure(invoice_distribution_options=["none"])

        assert settings_of(desk).invoice_distribution_options == ["none"]

    @pytest.mark.parametrize("options", [[], ["fax"], ["email", "email"]])
    def test_refuses_an_empty_unknown_or_repeated_option(self, desk, options):
        with pytest.raises(ValidationFailed) as refused:
            desk.configure(invoice_distribution_options=options)

        assert fields_of(refused.value) == ["invoice_distribution_options"]


class TestResponsibleAccountManagementSetting:
    def test_refuses_turning_off_while_managed_accounts_exist(self, make_desk):
        desk = make_desk(enable_responsible_account_management=True)
        payer = desk.new_account("Acme Holdings")
        desk.new_account("Acme Brick", responsible_account_id=payer.id)

        with pytest.raises(ValidationFailed) as refused:
            desk.configure(enable_responsible_account_management=False)

        assert fields_of(refused.value) == ["enable_responsible_account_management"]

    def test_turns_off_once_no_account_is_managed(self, make_desk):
        desk = make_desk(enable_responsible_account_management=True)
        desk.new_account("Acme Holdings")

        desk.configure(enable_responsible_account_management=False)

        assert settings_of(desk).enable_responsible_account_management is False


class TestAccountHierarchyManagementSetting:
    def test_refuses_turning_off_while_child_accounts_exist(self, make_desk):
        desk = make_desk(enable_account_hierarchy_management=True)
        parent = desk.new_account("Acme Holdings")
        desk.new_account("Acme Brick", parent_account_id=parent.id)

        with pytest.raises(ValidationFailed) as refused:
            desk.configure(enable_account_hierarchy_management=False)

        assert fields_of(refused.value) == ["enable_account_hierarchy_management"]

    def test_turns_off_once_no_account_has_a_parent(self, make_desk):
        desk = make_desk(enable_account_hierarchy_management=True)
        desk.new_account("Acme Holdings")

        desk.configure(enable_account_hierarchy_management=False)

        assert settings_of(desk).enable_account_hierarchy_management is False


class TestRequireSameBillCycleSetting:
    def test_turns_on_when_every_child_shares_its_parents_bill_cycle(self, make_desk):
        desk = make_desk(enable_account_hierarchy_management=True)
        parent = desk.new_account("Acme Holdings")
        desk.new_account("Acme Brick", parent_account_id=parent.id)

        desk.configure(require_same_bill_cycle_for_account_hierarchy=True)

        assert settings_of(desk).require_same_bill_cycle_for_account_hierarchy is True

    def test_refuses_turning_on_while_a_child_has_another_bill_cycle(self, make_desk):
        desk = make_desk(enable_account_hierarchy_management=True)
        weekly = desk.bill_cycle("Weekly", frequency="weekly", bill_day=1)
        parent = desk.new_account("Acme Holdings", bill_cycle_id=weekly.id)
        desk.new_account("Acme Brick", parent_account_id=parent.id)

        with pytest.raises(ValidationFailed) as refused:
            desk.configure(require_same_bill_cycle_for_account_hierarchy=True)

        assert fields_of(refused.value) == ["require_same_bill_cycle_for_account_hierarchy"]
        assert settings_of(desk).require_same_bill_cycle_for_account_hierarchy is False


class TestSettingsValues:
    def test_refuses_an_unknown_setting(self, desk):
        with pytest.raises(ValidationFailed) as refused:
            desk.configure(allow_everything=True)

        assert fields_of(refused.value) == ["allow_everything"]

    def test_refuses_a_time_zone_that_is_not_iana(self, desk):
        with pytest.raises(ValidationFailed) as refused:
            desk.configure(time_zone="Mars/Olympus_Mons")

        assert fields_of(refused.value) == ["time_zone"]

    def test_refuses_a_flag_that_is_not_true_or_false(self, desk):
        with pytest.raises(ValidationFailed) as refused:
            desk.configure(allow_multi_customer_accounts="yes")

        assert fields_of(refused.value) == ["allow_multi_customer_accounts"]

    def test_settings_of_one_mode_leave_the_other_alone(self, desk):
        desk.configure(allow_multi_customer_accounts=True)

        live = tenants.get_settings(desk.session, Scope(desk.scope.tenant_id, "live"))
        assert live.allow_multi_customer_accounts is False
