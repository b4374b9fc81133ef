from django.urls import path

from portal.alerts import views

app_name = "alerts"
urlpatterns = [path("<int:pk>/resolve", views.resolve, name="resolve")]
