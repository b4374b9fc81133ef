app_name = "account"
urlpatterns: list = []
