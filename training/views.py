"""Pages for admins watching training runs; the run page polls the REST API for live curves."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from training import selectors
from training.permissions import access_training, access_training_run


@login_required
def run_list_page(request: HttpRequest) -> HttpResponse:
    access_training(user=request.user)
    return render(request, "training/run_list.html", {"runs": selectors.training_run_list()[:200]})


@login_required
def run_page(request: HttpRequest, run_id: int) -> HttpResponse:
    run = access_training_run(user=request.user, run_id=run_id)
    return render(request, "training/run.html", {"run": run})
