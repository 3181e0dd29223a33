"""Seed the demo: four users and the "Anime vs photo" project with a calibration batch. Idempotent."""

import io
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from labeling import demo, ingest, projects
from labeling.models import BatchKind, Project

USERS = [("alice", "owner"), ("bob", "annotator"), ("dave", "annotator"), ("carol", "reviewer")]
PASSWORD = "winnow-demo"  # noqa: S105 - the demo prints it; real users are created by owners
CHOICES = [
    {
        "label": "Photorealistic",
        "description": "A photograph, or a render meant to pass as one.",
        "long_hint": "Natural lighting, lens blur, sensor noise, real textures such as skin pores or fabric "
        "weave. Choose this even for heavily edited photos as long as the scene was photographed.",
        "hotkey": "1",
        "domain": "A",
    },
    {
        "label": "Anime",
        "description": "Japanese-style animation or illustration.",
        "long_hint": "Flat cel shading, clean dark outlines, large expressive eyes, limited colour palette. "
        "Screenshots from anime series and fan illustrations in that style both count.",
        "hotkey": "2",
        "domain": "B",
    },
    {
        "label": "Neither",
        "description": "Anything else: text, memes, 3D renders, broken images.",
        "long_hint": "Use this when the image is neither a photo nor anime: Western cartoons, paintings, "
        "screenshots of text, collages, or when you cannot tell. These images are left out of training.",
        "hotkey": "3",
        "domain": "excluded",
    },
]


class Command(BaseCommand):
    help = "Create the demo users and project (safe to run again: existing ones are kept)."

    def handle(self, *args: Any, **options: Any) -> None:
        User = get_user_model()
        users = {}
        for username, _role in USERS:
            user, created = User.objects.get_or_create(username=username)
            if created:
                user.set_password(PASSWORD)
                user.is_staff = user.is_superuser = username == "alice"
                user.save()
            users[username] = user
        project = Project.objects.alive().filter(name="Anime vs photo").first()
        if project is None:
            with transaction.atomic():
                project = projects.create_project(
                    created_by=users["alice"],
                    fields={
                        "name": "Anime vs photo",
                        "instructions": "Decide whether each image is a photograph or anime-style art. "
                        "Hover a choice (or press ?) for detailed hints. Press the number keys to answer, "
                        "s to skip, u to undo your last answer.",
                        "question": "Is this image a photo or anime?",
                    },
                    choices=CHOICES,
                )
                for username, role in USERS[1:]:
                    projects.add_member(project=project, username=username, role=role)
                batch = projects.create_batch(
                    project=project, name="Calibration 1", kind=BatchKind.CALIBRATION, created_by=users["alice"]
                )
                files = [(f"demo-{i:02d}.png", io.BytesIO(demo.demo_image(i))) for i in range(24)]
                ingest.ingest_files(batch=batch, files=files)
                projects.finalize_batch(batch=batch)
            self.stdout.write(f"created the demo project {project.name!r} (id {project.pk})")
        self.stdout.write("demo logins (password for all: " + PASSWORD + "):")
        for username, role in USERS:
            self.stdout.write(f"  {username:6s} {role}")

