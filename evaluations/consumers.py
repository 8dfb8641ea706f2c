from evaluations import events
from evaluations.models import Evaluation
from slmlab.consumers import FollowConsumer


class EvaluationConsumer(FollowConsumer):
    """Follows one evaluation: its progress, then a link to the results."""

    def find(self, user, kwargs) -> Evaluation | None:
        return Evaluation.objects.filter(pk=kwargs["evaluation_id"], owner_id=user.pk).first()

    def group_of(self, evaluation: Evaluation) -> str:
        return events.group(evaluation.pk)

    def current_state(self, evaluation: Evaluation) -> str:
        return events.render_progress(evaluation)
