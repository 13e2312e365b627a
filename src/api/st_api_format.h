/*
 * response_format / grammar fields (st_api_format.c). Internal to the API
 * layer: called once per generating request from st_api_req.c (and
 * st_api_responses.c for text.format).
 */
#ifndef ST_API_FORMAT_H
#define ST_API_FORMAT_H

#include <yajl/yajl_tree.h>

#include "starling/st_api.h"

/* Compiles obj's response_format or grammar into req->constraint (NULL
 * when none); problems become request errors (400), *nomem = 1 when out
 * of memory. */
void st_api_constraint(st_api_request *req, yajl_val obj, int *nomem);

/* The Responses API's text.format ({"type":"text"}, {"type":"json_object"},
 * {"type":"json_schema","name","schema","strict"}) into req->constraint.
 * Returns 0 (text), 1 (json_object), 2 (json_schema), -1 on an error
 * (recorded in req, or *nomem). */
int st_api_text_format(st_api_request *req, yajl_val fmt, int *nomem);

#endif /* ST_API_FORMAT_H */
