"""The admin is BoatLoad's: branded, and its "View site" leads to the console."""
from django.contrib import admin

admin.site.site_header = "BoatLoad administration"
admin.site.site_title = "BoatLoad"
admin.site.index_title = "Rows behind the console"
admin.site.site_url = "/console/"
