import pytest

from billfold.customers.search import search_billing_accounts, search_customers

SE_BILLING = {"line1": "Drottninggatan 1", "city": "Stockholm", "country": "SE"}


def customer_names(desk, query, **page):
    rows = search_customers(desk.session, desk.scope, query=query, limit=page.pop("limit", 50),
                            **page)
    return [c.customer_name for c in rows]


def account_numbers(desk, query, **filters):
    rows = search_billing_accounts(desk.session, desk.scope, query=query,
                                   limit=filters.pop("limit", 50), **filters)
    return [a.number for a in rows]


class TestSearchCustomers:
    @pytest.fixture
    def desk(self, desk):
        desk.create_customer("Acme Brick", number="AB-100", external_number="SF-ACME",
                             primary_email="ap@acmebrick.example",
                             billing_address=SE_BILLING, tax_number="SE556703748501")
        desk.create_customer("Zenith Tile", number="ZT-200", external_number="SF-ZEN",
                             primary_email="billing@zenith.example")
        return desk

    def test_finds_by_the_start_of_the_name_in_any_letter_case(self, desk):
        assert customer_names(desk, "aCMe b") == ["Acme Brick"]

    def test_does_not_find_by_a_word_inside_the_name(self, desk):
        assert customer_names(desk, "brick") == []

    def test_finds_by_the_start_of_the_number(self, desk):
        assert customer_names(desk, "zt-2") == ["Zenith Tile"]

    def test_finds_by_the_start_of_the_external_number(self, desk):
        assert customer_names(desk, "sf-a") == ["Acme Brick"]

    def test_finds_by_the_start_of_the_primary_email(self, desk):
        assert customer_names(desk, "BILLING@") == ["Zenith Tile"]

    def test_finds_by_the_start_of_the_tax_number(self, desk):
        assert customer_names(desk, "se5567") == ["Acme Brick"]

    def test_finds_every_customer_a_shared_prefix_matches(self, desk):
        assert sorted(customer_names(desk, "sf-")) == ["Acme Brick", "Zenith Tile"]

    def test_lists_every_customer_without_a_query(self, desk):
        assert sorted(customer_names(desk, None)) == ["Acme Brick", "Zenith Tile"]

    def test_finds_a_renamed_customer_by_its_new_name(self, desk):
        acme = search_customers(desk.session, desk.scope, query="acme", limit=1)[0]
        desk.update_customer(acme, company_name="Brickworks")

        assert customer_names(desk, "brickw") == ["Brickworks"]
        assert customer_names(desk, "acme") == []

    def test_never_shows_another_tenants_customers(self, desk, make_desk):
        make_desk().create_customer("Acme Bricks of Texas")

        assert customer_names(desk, "acme") == ["Acme Brick"]
        assert len(customer_names(desk, None)) == 2


class TestSearchBillingAccounts:
    @pytest.fixture
    def desk(self, make_desk):
        desk = make_desk(allow_multi_customer_accounts=True)
        acme, _ = desk.create_customer("Acme Brick", number="AB-100",
                                       account=desk.account(number="ACCT-US"))
        desk.add_account(acme, "SEK", number="ACCT-SE", external_number="ERP-77")
        desk.create_customer("Zenith Tile", number="ZT-200", account=desk.account(number="Z-1"))
        return desk

    def test_finds_by_the_start_of_the_account_number(self, desk):
        assert account_numbers(desk, "acct-s") == ["ACCT-SE"]

    def test_finds_by_the_start_of_the_external_number(self, desk):
        assert account_numbers(desk, "erp") == ["ACCT-SE"]

    def test_finds_every_account_of_a_customer_by_its_name(self, desk):
        assert account_numbers(desk, "ACME") == ["ACCT-US", "ACCT-SE"]

    def test_finds_every_account_of_a_customer_by_its_number(self, desk):
        assert account_numbers(desk, "ab-1") == ["ACCT-US", "ACCT-SE"]

    def test_filters_by_status(self, desk):
        (zenith,) = search_billing_accounts(desk.session, desk.scope, query="z-1", limit=5)
        desk.update_account(zenith, status="suspended")

        assert account_numbers(desk, None, status="suspended") == ["Z-1"]

    def test_never_shows_another_tenants_accounts(self, desk, make_desk):
        other = make_desk()
        other.create_customer("Acme Brick", account=other.account(number="ACCT-UK"))

        assert account_numbers(desk, "acct") == ["ACCT-US", "ACCT-SE"]


class TestKeysetPagination:
    def test_pages_through_customers_without_overlap_or_gaps(self, desk):
        for i in range(5):
            desk.create_customer(f"Acme {i}")

        first = search_customers(desk.session, desk.scope, query="acme", limit=2)
        second = search_customers(desk.session, desk.scope, query="acme", limit=2,
                                  starting_after=first[-1].id)
        third = search_customers(desk.session, desk.scope, query="acme", limit=2,
                                 starting_after=second[-1].id)

        names = [c.customer_name for c in [*first, *second, *third]]
        assert names == ["Acme 0", "Acme 1", "Acme 2", "Acme 3", "Acme 4"]

    def test_pages_through_accounts_without_overlap_or_gaps(self, desk):
        for i in range(3):
            desk.create_customer(f"Acme {i}", account=desk.account(number=f"ACCT-{i}"))

        first = search_billing_accounts(desk.session, desk.scope, query=None, limit=2)
        rest = search_billing_accounts(desk.session, desk.scope, query=None, limit=2,
                                       starting_after=first[-1].id)

        assert [a.number for a in first] == ["ACCT-0", "ACCT-1"]
        assert [a.number for a in rest] == ["ACCT-2"]

    def test_the_page_after_the_last_is_empty(self, desk):
        customer, _ = desk.create_customer()

        assert search_customers(desk.session, desk.scope, query=None, limit=5,
                                starting_after=customer.id) == []
