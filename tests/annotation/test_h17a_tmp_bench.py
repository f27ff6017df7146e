import random, time
from annotation.models import Item, Response, PairwiseJudgment, AIFeedback
from annotation.selectors_agreement import agreement_report, agreement_dashboard
from annotation.selectors_labeler import labeler_agreement
from tests.annotation.feedback import people
from annotation import services

def test_bench(researcher):
    project = services.project_create(slug="bench", kind="pairwise", created_by=researcher)
    N = 10000
    Item.objects.bulk_create(Item(project=project, external_id=f"i{k}", prompt="q") for k in range(N))
    items = list(Item.objects.filter(project=project).order_by("id"))
    Response.objects.bulk_create(Response(item=i, project=project, position=p, text="t") for i in items for p in (0, 1))
    by_item = {}
    for r in Response.objects.filter(project=project).order_by("id"):
        by_item.setdefault(r.item_id, []).append(r)
    users = people("b", 20)
    rng = random.Random(0)
    rows = []
    for i in items:
        a, b = by_item[i.pk]
        for u in rng.sample(users, 3):
            rows.append(PairwiseJudgment(item=i, annotator=u, client_request_id=f"{i.pk}-{u.pk}", response_a=a, response_b=b, choice=rng.choice(["a", "b", "tie"])))
    PairwiseJudgment.objects.bulk_create(rows, batch_size=5000)
    AIFeedback.objects.bulk_create([AIFeedback(response=r, labeler_model="L", claims=["c"], p_yes=[0.5], score=rng.choice([0, -1])) for rs in by_item.values() for r in rs], batch_size=5000)
    t = time.time(); agreement_report(project=project); print("report", time.time() - t)
    t = time.time(); agreement_dashboard(project=project); print("dashboard cold", time.time() - t)
    t = time.time(); agreement_dashboard(project=project); print("dashboard warm", time.time() - t)
    t = time.time(); labeler_agreement(project=project); print("labeler_agreement", time.time() - t)
